#!/bin/bash
# What the misuse checks cost on real programs: python3 running the
# allocation-heavy script of the preload tests (with PYTHONMALLOC=malloc,
# so every object goes through malloc) and gcc -O2 -c on a generated C
# file, each under one preloaded library after another, pinned to one CPU.
# Not a test and not part of any build: a probe behind "Why the checks
# cannot cost 3 % on the shortest loops" in bench/README.md.
#
#   cargo build --release -p hakmem-preload
#   cargo build --release -p hakmem-preload --features unchecked --target-dir target/unchecked
#   bench/probes/real_programs_cost.sh 11 target/release/libhakmem.so target/unchecked/release/libhakmem.so
#
# Prints, per program and library, the median, minimum and maximum wall
# seconds of RUNS runs. The runs are interleaved (every library once per
# round), so a drift of the machine's speed hits them all alike.
set -euo pipefail

if [ $# -lt 2 ]; then
    echo "usage: $0 RUNS LIB.so [LIB.so...]" >&2
    exit 2
fi
runs=$1
shift
libs=()
for lib in "$@"; do
    [ -f "$lib" ] || { echo "$0: no such library: $lib" >&2; exit 2; }
    libs+=("$(realpath "$lib")")
done
here=$(cd "$(dirname "$0")" && pwd)
script="$here/../../alloc/preload/tests/programs/alloc_heavy.py"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# 900 structs, each with a function over it, and one function calling
# them all: about 2,700 lines, 5 s of gcc -O2 here. Deterministic.
python3 - "$work/gen.c" <<'PY'
import random, sys
rng = random.Random(7)
out = []
n = 900
for i in range(n):
    k = rng.randint(3, 12)
    out.append(f"struct s{i} {{ int a; long b[{k}]; double c; }};")
    out.append(
        f"static long f{i}(struct s{i} *p, int k) {{ long t = 0; "
        f"for (int j = 0; j < {k}; j++) {{ t += p->b[j] * (k + {i}); "
        f"if (t % {k + 3} == 1) t ^= p->a; }} "
        f"switch (k & 7) {{ case 0: t += {i}; break; case 1: t -= p->a; break; "
        f"case 2: t *= 3; break; default: t += (long)p->c; }} return t; }}"
    )
out.append("long total(void *v[], int k) { long t = 0;")
for i in range(n):
    out.append(f"  t += f{i}((struct s{i} *)v[{i}], k);")
out.append("  return t; }")
open(sys.argv[1], "w").write("\n".join(out) + "\n")
PY

seconds() {
    local start end
    start=$(date +%s.%N)
    "$@" >/dev/null 2>&1 || { echo "$0: failed: $*" >&2; exit 1; }
    end=$(date +%s.%N)
    python3 -c "print(f'{$end - $start:.4f}')"
}

for _ in $(seq 1 "$runs"); do
    for lib in "${libs[@]}"; do
        t=$(seconds env PYTHONMALLOC=malloc PYTHONHASHSEED=0 LD_PRELOAD="$lib" taskset -c 1 python3 "$script")
        echo "python3 $lib $t"
        t=$(cd "$work" && seconds env LD_PRELOAD="$lib" taskset -c 1 gcc -O2 -c gen.c -o gen.o)
        echo "gcc $lib $t"
    done
done | python3 -c '
import sys, collections
runs = collections.defaultdict(list)
for line in sys.stdin:
    prog, lib, s = line.split()
    runs[(prog, lib)].append(float(s))
for (prog, lib), v in sorted(runs.items()):
    v.sort()
    print(f"{prog:8} {lib}: median {v[len(v) // 2]:.4f} s  min {v[0]:.4f}  max {v[-1]:.4f}  ({len(v)} runs)")
'
