// A JIT- and allocator-heavy program: V8 compiles hot functions and its garbage collector
// allocates, promotes and frees heap pages while the program builds and drops objects.
function mk(i) { return { id: i, name: "n" + i, tags: [i & 7, i & 15, i & 31], next: null }; }
let keep = [];
let sum = 0;
for (let round = 0; round < 40; round++) {
  let head = null;
  for (let i = 0; i < 20000; i++) { const o = mk(i + round); o.next = head; head = o; }
  for (let o = head; o; o = o.next) sum += o.tags[1] + o.name.length;
  if (round % 4 === 0) keep.push(head);           // some survive: old-generation growth
  if (keep.length > 4) keep.shift();
}
const m = new Map();
for (let i = 0; i < 100000; i++) m.set("k" + i, i * 2);
for (let i = 0; i < 100000; i += 3) m.delete("k" + i);
console.log(sum, m.size);
