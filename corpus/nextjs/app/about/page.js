export const metadata = { title: 'About' };

export default function About() {
  return (
    <article>
      <h1>About</h1>
      <p>A Next.js App Router app built with output: standalone, for codeblob&apos;s differential harness.</p>
    </article>
  );
}
