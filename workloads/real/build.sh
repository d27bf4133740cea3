#!/bin/sh
# build: a parallel C build, `make -j2` of 12 generated C files linked into one program.
# Stands for everyday compile jobs: make forks a shell per recipe, the shell execs gcc, gcc
# forks and execs cc1 and as, collect2 and ld: many short-lived processes, each a fresh
# address space with file-backed text (exec-heavy, fork-light).
# Needs: make, gcc (Debian packages make, gcc), perf, root.  Ran 1.7 s (events), 4.9 s with perf's start, on the recording host (AMD EPYC, 2 CPUs, load 4.8-7.7).
set -e
here=$(cd "$(dirname "$0")" && pwd)
command -v gcc >/dev/null || apt-get install -y -qq gcc make
command -v perf >/dev/null || apt-get install -y -qq linux-perf
src=$(mktemp -d)
trap 'rm -rf "$src"' EXIT
for i in $(seq 1 12); do
  cat > "$src/unit$i.c" <<C
#include <string.h>
struct rec$i { int key; double weight; char name[32]; };
static int cmp$i(const struct rec$i *a, const struct rec$i *b) { return a->key - b->key; }
double unit$i(int n) {
    struct rec$i r[64];
    double s = 0;
    for (int k = 0; k < 64; k++) { r[k].key = (k * 7919 + $i) % 64; r[k].weight = k * 0.5; memset(r[k].name, k, 31); r[k].name[31] = 0; }
    for (int k = 1; k < 64; k++) if (cmp$i(&r[k - 1], &r[k]) > 0) s += r[k].weight * n;
    return s;
}
C
done
{ printf 'double unit%s(int);\n' $(seq 1 12); echo 'int main(void) { double s = 0;'; for i in $(seq 1 12); do echo "s += unit$i(3);"; done; echo 'return s < 0; }'; } > "$src/main.c"
cat > "$src/Makefile" <<'M'
OBJS = $(patsubst %.c,%.o,$(wildcard *.c))
prog: $(OBJS)
	gcc -o $@ $(OBJS)
%.o: %.c
	gcc -O1 -c $< -o $@
M
cd "$src"
mmbench record -o "$here/build.npz" -- make -s -j2
