import { notFound } from 'next/navigation';
import { findItem } from '../../../lib/data.js';

export const dynamic = 'force-dynamic';

export async function generateMetadata({ params }) {
  const { id } = await params;
  const item = findItem(id);
  return { title: item ? item.name : 'Not found' };
}

export default async function ItemPage({ params }) {
  const { id } = await params;
  const item = findItem(id);
  if (!item) notFound();
  return (
    <>
      <h1>{item.name}</h1>
      <dl>
        <dt>price</dt><dd>{item.price.toFixed(2)}</dd>
        <dt>in stock</dt><dd>{item.stock}</dd>
      </dl>
    </>
  );
}
