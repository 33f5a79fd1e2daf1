import { primesBelow } from '../../lib/data.js';

// Rendered on every request: a server component that does some work.
export const dynamic = 'force-dynamic';

export default async function Primes({ searchParams }) {
  const { limit: raw } = await searchParams;
  const limit = Math.min(Math.max(Number.parseInt(raw ?? '1000', 10) || 1000, 10), 200000);
  const primes = primesBelow(limit);
  const gaps = new Map();
  for (let i = 1; i < primes.length; i++) {
    const gap = primes[i] - primes[i - 1];
    gaps.set(gap, (gaps.get(gap) ?? 0) + 1);
  }
  const rows = [...gaps.entries()].sort((a, b) => a[0] - b[0]);
  return (
    <>
      <h1>Primes below {limit}</h1>
      <p>
        {primes.length} primes; the largest is {primes[primes.length - 1]}.
      </p>
      <table>
        <thead>
          <tr><th>gap</th><th>count</th></tr>
        </thead>
        <tbody>
          {rows.map(([gap, count]) => (
            <tr key={gap}><td>{gap}</td><td>{count}</td></tr>
          ))}
        </tbody>
      </table>
    </>
  );
}
