"""Painting on a Ray cluster: a pool of warm engine workers (the optional extra impasto[cluster]).

connect.py joins a cluster or starts a local one, worker.py is the engine actor, pool.py the
daemon's side (one RemoteEngine per runner thread, with the engine's stylize/describe contract).
Only these modules import Ray, and only when a door asks for a cluster, so `import impasto` and
every command without --cluster work where Ray is not installed.
"""
