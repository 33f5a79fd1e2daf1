import Link from 'next/link';

export const metadata = { title: 'codeblob Next.js corpus', description: 'A small App Router app served standalone' };

export default function RootLayout({ children }) {
  return (
    <html lang="en">
      <body>
        <nav>
          <Link href="/">Home</Link> · <Link href="/about">About</Link> · <Link href="/primes?limit=5000">Primes</Link> ·{' '}
          <Link href="/items/7">Item 7</Link>
        </nav>
        <main>{children}</main>
      </body>
    </html>
  );
}
