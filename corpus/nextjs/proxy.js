import { NextResponse } from 'next/server';

// Which worker answered: the harness uses it to know when every worker serves (and masks it).
export function proxy() {
  const response = NextResponse.next();
  response.headers.set('x-served-by', String(process.pid));
  return response;
}
