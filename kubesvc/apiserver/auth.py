"""Bearer-token authentication and a two-role authorisation.

The tokens file (`<data dir>/tokens.csv`, as Kubernetes' static token file)
has one user a line: `token,user,uid,"group1,group2"`. Members of
`system:masters` may do anything; every other user may only read (get, list,
watch). An admin token is made on first start and written into the kubeconfig.
"""

from __future__ import annotations

import csv
import hmac
import io
import secrets
from dataclasses import dataclass
from pathlib import Path

ADMIN_GROUP = "system:masters"
READ_VERBS = frozenset({"get", "list", "watch"})


@dataclass(frozen=True)
class User:
    name: str
    uid: str
    groups: tuple[str, ...]

    @property
    def is_admin(self) -> bool:
        return ADMIN_GROUP in self.groups

    def may(self, verb: str) -> bool:
        return self.is_admin or verb in READ_VERBS


class TokenFileError(ValueError):
    pass


def parse_tokens(text: str) -> dict[str, User]:
    users: dict[str, User] = {}
    for lineno, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not row or row[0].startswith("#"):
            continue
        if len(row) < 3:
            raise TokenFileError(f"line {lineno}: expected token,user,uid[,groups]")
        token, name, uid = (c.strip() for c in row[:3])
        groups = tuple(g.strip() for g in row[3].split(",") if g.strip()) if len(row) > 3 else ()
        if not token or not name:
            raise TokenFileError(f"line {lineno}: token and user must not be empty")
        users[token] = User(name, uid, groups)
    return users


def ensure_tokens_file(path: Path) -> str:
    """The admin token, creating the tokens file with an admin and a read-only user if absent."""
    if path.exists():
        for token, user in parse_tokens(path.read_text()).items():
            if user.is_admin:
                return token
        raise TokenFileError(f"no user in group {ADMIN_GROUP} (the kubeconfig needs one)")
    admin, viewer = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    text = f'{admin},admin,1,"{ADMIN_GROUP}"\n{viewer},viewer,2,"kubesvc:read-only"\n'
    path.write_text(text)
    path.chmod(0o600)
    return admin


class Authenticator:
    def __init__(self, users: dict[str, User]) -> None:
        self._users = users

    def user_for(self, authorization: str | None) -> User | None:
        if not authorization or not authorization.startswith("Bearer "):
            return None
        presented = authorization[len("Bearer ") :].strip()
        for token, user in self._users.items():
            # Compare in constant time so response timing says nothing about tokens.
            if hmac.compare_digest(token.encode(), presented.encode()):
                return user
        return None
