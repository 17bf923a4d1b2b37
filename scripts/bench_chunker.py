#!/usr/bin/env python3
"""How the FastCDC average chunk size trades dedup against chunk count (the
measurement behind the chunker parameters in DESIGN.md). For each average
(min = avg/4, max = avg*4): take 256 MiB of mixed data, then edit it the way
data directories change (20 one-byte edits in random files, 4 KiB inserted in
the middle of a file, 1 MiB appended to a log) and take again.
Usage: scripts/bench_chunker.py SNAP_BIN [WORKDIR]"""
import json, os, random, shutil, subprocess, sys, tempfile, time

snap = sys.argv[1]
work = sys.argv[2] if len(sys.argv) > 2 else tempfile.mkdtemp(prefix="snap-chunker-")
here = os.path.dirname(os.path.abspath(__file__))
src = os.path.join(work, "data")
os.makedirs(src, exist_ok=True)
for i in range(8):
    subprocess.run([sys.executable, os.path.join(here, "gen_text.py"), os.path.join(src, f"log-{i}.txt"), str(16 << 20), str(i)], check=True)
    with open(os.path.join(src, f"blob-{i}.bin"), "wb") as f:
        f.write(random.Random(i).randbytes(16 << 20))
pristine = os.path.join(work, "pristine")
shutil.copytree(src, pristine)

def edit(root):
    rnd = random.Random(7)
    names = sorted(os.listdir(root))
    for _ in range(20):
        p = os.path.join(root, rnd.choice(names))
        with open(p, "r+b") as f:
            f.seek(rnd.randrange(os.path.getsize(p)))
            f.write(bytes([rnd.randrange(256)]))
    p = os.path.join(root, "blob-3.bin")
    data = open(p, "rb").read()
    open(p, "wb").write(data[: len(data) // 2] + rnd.randbytes(4096) + data[len(data) // 2 :])
    with open(os.path.join(root, "log-0.txt"), "ab") as f:
        f.write(b"appended line\n" * 75000)

print(f"{'avg':>6} {'chunks':>7} {'first take s':>12} {'after edits: stored':>20}")
for avg in [64 << 10, 128 << 10, 256 << 10, 512 << 10, 1 << 20]:
    shutil.rmtree(src)
    shutil.copytree(pristine, src)
    store = os.path.join(work, "store")
    shutil.rmtree(store, ignore_errors=True)
    subprocess.run([snap, "--store", store, "init"], check=True, capture_output=True)
    cfg = json.load(open(os.path.join(store, "config")))
    cfg["chunker"] = {"min": avg // 4, "avg": avg, "max": avg * 4}
    json.dump(cfg, open(os.path.join(store, "config"), "w"))
    t = time.perf_counter()
    first = json.loads(subprocess.run([snap, "--store", store, "--json", "take", src], check=True, capture_output=True).stdout)
    secs = time.perf_counter() - t
    edit(src)
    second = json.loads(subprocess.run([snap, "--store", store, "--json", "take", src], check=True, capture_output=True).stdout)
    print(f"{avg >> 10:>5}K {first['stats']['chunks_added']:>7} {secs:>12.2f} {second['stats']['added'] / 2**20:>17.2f} MiB")
shutil.rmtree(work)
