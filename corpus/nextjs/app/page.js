import Link from 'next/link';
import { items } from '../lib/data.js';

// Prerendered at build time: served from the build output.
export default function Home() {
  const cheapest = [...items].sort((a, b) => a.price - b.price).slice(0, 5);
  return (
    <>
      <h1>Catalogue</h1>
      <p>{items.length} items. The five cheapest:</p>
      <ul>
        {cheapest.map((item) => (
          <li key={item.id}>
            <Link href={`/items/${item.id}`}>{item.name}</Link>: {item.price.toFixed(2)}
          </li>
        ))}
      </ul>
    </>
  );
}
