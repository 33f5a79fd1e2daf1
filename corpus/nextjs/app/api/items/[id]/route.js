import { findItem } from '../../../../lib/data.js';

export const dynamic = 'force-dynamic';

export async function GET(_request, { params }) {
  const { id } = await params;
  const item = findItem(id);
  if (!item) return Response.json({ error: `item ${id} does not exist` }, { status: 404 });
  return Response.json(item);
}
