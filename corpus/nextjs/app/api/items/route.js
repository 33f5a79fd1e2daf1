import { items } from '../../../lib/data.js';

export const dynamic = 'force-dynamic';

export async function GET(request) {
  const url = new URL(request.url);
  const limit = Math.min(Number(url.searchParams.get('limit') ?? 10) || 10, 50);
  const offset = Math.max(Number(url.searchParams.get('offset') ?? 0) || 0, 0);
  return Response.json({ total: items.length, items: items.slice(offset, offset + limit) });
}
