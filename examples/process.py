"""An example job, like the seed's test_process.py: write results, print the top three.

Launch it with ``jobledger launch examples/jobscript.sbatch`` (SLURM) or
``jobledger launch --scheduler local examples/jobscript.sbatch``; the tag and the
job ID reach it through the environment, so the code below holds no Redis details.
"""

import random
import uuid

import jobledger

# This job's namespace, <tag>-<jobid>:.  heartbeat_s: say "still alive" every minute
# from a background thread, so `jobledger track` can tell a hung job (no heartbeat
# for stall_after) from a slow one; every write below is a heartbeat too.
results = jobledger.results(heartbeat_s=60)

# Each value under its own key, as the seed did with uuid1 keys.
results.update({str(uuid.uuid1()): random.random() for _ in range(10)})
results.set("algorithm", "random-search")  # text: stored, never ranked by top

print(f"results written under {results.prefix}:")
for entry in results.top(3):
    print(f"  {entry.key} = {entry.value}")
