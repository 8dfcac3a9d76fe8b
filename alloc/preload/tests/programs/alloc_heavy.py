# An allocation-heavy Python workload with deterministic output: dicts,
# lists, strings, bytes, JSON, reference cycles and the garbage collector,
# threads. Run with PYTHONMALLOC=malloc so every object goes through the
# C allocator, and PYTHONHASHSEED=0.
import collections
import gc
import hashlib
import json
import random
import re
import zlib
from concurrent.futures import ThreadPoolExecutor

random.seed(12345)


def digest(obj):
    return hashlib.sha256(repr(obj).encode()).hexdigest()[:16]


d = {}
for i in range(80000):
    d.setdefault(f"k{random.randrange(20000)}", []).append(str(i) * (i % 7))
print("dict", len(d), digest(sorted((k, len(v)) for k, v in d.items())))
del d

items = [(i, str(i), [i] * (i % 5)) for i in range(100000)]
del items[::3]
print("list", len(items), digest(items[:1000]))
del items

s = ""
for i in range(50000):
    s += chr(65 + i % 26)
b = bytearray()
for i in range(40000):
    b += bytes([i % 256]) * (i % 13)
print("concat", len(s), len(b), hashlib.sha256(b).hexdigest()[:16])

obj = [{"id": i, "name": "x" * (i % 50), "tags": list(range(i % 20))} for i in range(10000)]
txt = json.dumps(obj)
print("json", len(txt), json.loads(txt) == obj)


class Node:
    def __init__(self, v):
        self.v = v
        self.peers = []


for r in range(4):
    nodes = [Node(i) for i in range(10000)]
    for n in nodes:
        n.peers.append(nodes[random.randrange(len(nodes))])
    del nodes, n
    print("gc", r, gc.collect())


def work(t):
    rnd = random.Random(t)
    parts = [bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 400))) for _ in range(400)]
    blob = b"".join(parts) * 10
    return t, len(blob), zlib.crc32(zlib.compress(blob, 6))


with ThreadPoolExecutor(4) as ex:
    for r in ex.map(work, range(12)):
        print("thread", *r)

text = " ".join(f"word{random.randrange(1000)}" for _ in range(50000))
print("counter", collections.Counter(re.findall(r"word(\d+)", text)).most_common(3))
