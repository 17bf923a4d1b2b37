"""Writes N bytes of unique, compressible log-like text to a file (bench input)."""
import base64, os, sys

path, size, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with open(path, "w") as f:
    written, i = 0, seed * 10_000_000
    while written < size:
        rnd = base64.b64encode(os.urandom(3 * 4096)).decode()
        lines = [f"2026-11-23T03:00:{(i + k) % 60:02d} seq={i + k} user={rnd[k * 8:k * 8 + 8]} level=info msg=\"chunk stored in pack\"\n" for k in range(1536)]
        block = "".join(lines)
        f.write(block)
        written += len(block)
        i += 1536
    f.truncate(size)
