// A deterministic catalogue shared by pages and route handlers.
const WORDS = ['anchor', 'basil', 'cobalt', 'dune', 'ember', 'fjord', 'garnet', 'harbor', 'indigo', 'juniper', 'kelp', 'lumen'];

export const items = Array.from({ length: 120 }, (_, i) => ({
  id: i + 1,
  name: `${WORDS[i % WORDS.length]} ${WORDS[(i * 5) % WORDS.length]}`,
  price: Math.round(((i * 7919) % 10007) / 3.1) / 100,
  stock: (i * 37) % 23,
}));

export function findItem(id) {
  return items.find((item) => String(item.id) === String(id));
}

/** Primes below `limit` (a sieve): work a server component does per request. */
export function primesBelow(limit) {
  const sieve = new Uint8Array(limit);
  const out = [];
  for (let i = 2; i < limit; i++) {
    if (sieve[i]) continue;
    out.push(i);
    for (let j = i * i; j < limit; j += i) sieve[j] = 1;
  }
  return out;
}
