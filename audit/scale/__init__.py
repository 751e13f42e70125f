"""Scale-out: shards of work that any process can run (:mod:`audit.scale.shards`) and the executors that
run them (local processes, Ray)."""
