import { createHash } from 'node:crypto';

export const dynamic = 'force-dynamic';

export async function POST(request) {
  const text = await request.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    return Response.json({ error: 'body is not JSON' }, { status: 400 });
  }
  const sha256 = createHash('sha256').update(text).digest('hex');
  return Response.json({ received: json, bytes: Buffer.byteLength(text), sha256 }, { headers: { 'cache-control': 'no-store' } });
}
