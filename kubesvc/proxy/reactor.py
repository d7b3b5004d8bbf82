"""Readiness callbacks for the proxy's sockets: one epoll set, driven by one reader on the loop.

Why not `loop.add_reader` per socket: on uvloop (libuv's uv_poll), a socket
error (EPOLLERR, e.g. a client's RST) closes the poll handle and reports
EBADF to the loop's exception handler; the callbacks registered for that
socket are never called again, so the proxy never learns that the
connection died and leaks it (seen under connection-reset load with uvloop
0.23). Here an error wakes both the reader and the writer, which then see
the error from the socket call itself, as with the standard selector loop.

It also makes the data path behave the same on uvloop and on the standard
loop, and a batch of ready sockets costs one loop callback and one
`epoll_wait`. Level-triggered: a callback that leaves data unread is called
again on the next pass.
"""

from __future__ import annotations

import asyncio
import logging
import select
from collections.abc import Callable

log = logging.getLogger("kubesvc.proxy")

Callback = Callable[[], None]

_IN = select.EPOLLIN
_OUT = select.EPOLLOUT
_READ_EVENTS = select.EPOLLIN | select.EPOLLERR | select.EPOLLHUP
_WRITE_EVENTS = select.EPOLLOUT | select.EPOLLERR | select.EPOLLHUP
BATCH = 512  # events handled per loop callback; more wait for the next pass (fairness)


class Reactor:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._epoll = select.epoll()
        self._readers: dict[int, Callback] = {}
        self._writers: dict[int, Callback] = {}
        self._masks: dict[int, int] = {}
        loop.add_reader(self._epoll.fileno(), self._dispatch)

    def _update(self, fd: int) -> None:
        mask = (_IN if fd in self._readers else 0) | (_OUT if fd in self._writers else 0)
        old = self._masks.get(fd, 0)
        if mask == old:
            return
        if not mask:
            del self._masks[fd]
            self._epoll.unregister(fd)
        elif not old:
            try:
                self._epoll.register(fd, mask)
            except FileExistsError:  # forgotten but not yet closed: still in the set
                self._epoll.modify(fd, mask)
            self._masks[fd] = mask
        else:
            self._epoll.modify(fd, mask)
            self._masks[fd] = mask

    def add_reader(self, fd: int, callback: Callback) -> None:
        self._readers[fd] = callback
        self._update(fd)

    def remove_reader(self, fd: int) -> None:
        if self._readers.pop(fd, None) is not None:
            self._update(fd)

    def add_writer(self, fd: int, callback: Callback) -> None:
        self._writers[fd] = callback
        self._update(fd)

    def remove_writer(self, fd: int) -> None:
        if self._writers.pop(fd, None) is not None:
            self._update(fd)

    def forget(self, fd: int) -> None:
        """Drop every callback of `fd`, which the caller closes right away.

        No epoll_ctl: closing the (never duplicated) fd takes it out of the set.
        """
        self._readers.pop(fd, None)
        self._writers.pop(fd, None)
        self._masks.pop(fd, None)

    def _dispatch(self) -> None:
        try:
            events = self._epoll.poll(0, BATCH)
        except InterruptedError:
            return
        readers, writers = self._readers, self._writers
        for fd, mask in events:
            try:
                # Looked up per event: an earlier callback may have closed this fd.
                if mask & _READ_EVENTS and (callback := readers.get(fd)) is not None:
                    callback()
                if mask & _WRITE_EVENTS and (callback := writers.get(fd)) is not None:
                    callback()
            except Exception:  # one connection's bug must not stop the others
                log.exception("proxy: callback for fd %d failed", fd)

    def close(self) -> None:
        self.loop.remove_reader(self._epoll.fileno())
        self._epoll.close()
        self._readers.clear()
        self._writers.clear()
        self._masks.clear()
