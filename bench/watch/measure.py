"""measure.py OUT_PREFIX CMD: runs CMD under bash, stdout/stderr to OUT_PREFIX.{out,err}, and
writes "wall_s cpu_s rc maxrss_kib" to OUT_PREFIX.time: CPU = user + system of the whole
process tree; maxrss = the peak RSS of the largest process in it."""
import resource, subprocess, sys, time
prefix, cmd = sys.argv[1], sys.argv[2]
before = resource.getrusage(resource.RUSAGE_CHILDREN)
start = time.monotonic()
with open(prefix + ".out", "wb") as out, open(prefix + ".err", "wb") as err:
    rc = subprocess.call(["bash", "-c", cmd], stdout=out, stderr=err)
wall = time.monotonic() - start
after = resource.getrusage(resource.RUSAGE_CHILDREN)
cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
with open(prefix + ".time", "w") as f:
    f.write(f"{wall:.3f} {cpu:.3f} {rc} {after.ru_maxrss}\n")
