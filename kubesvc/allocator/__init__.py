"""kubesvc.allocator: ClusterIP and node-port allocation, and the repair loop.

Pure: `ranges` (spaces, KEP-3070 bands, candidate choice, flag parsing),
`records` (per-value record keys and shapes), `plan` (what a Service write
needs), `reconcile` (what a repair pass does). I/O: `service` (allocation in
the Service write transaction), `repair` (the periodic loop).
"""
