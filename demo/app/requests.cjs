'use strict';
// The same requests for every run (the demo compares the answers), and for the training run.
module.exports = [
  ['POST', '/transpile', { code: 'const add = (a: number, b: number): number => a + b;\nexport class Box<T> { constructor(private v: T) {} get(): T { return this.v; } }' }],
  ['POST', '/babel', { code: 'const { a, ...rest } = obj; class K { #x = 1; get x() { return this.#x; } } export default async () => a ?? rest;' }],
  ['POST', '/format', { code: 'function   f(a,b){return {a,b,sum:a+b}}\nconst x=[1,2,3].map(n=>n*2)' }],
  ['POST', '/format', { code: 'interface P{a:number}\nexport const g=(p:P)=>p.a', parser: 'typescript' }],
  ['GET', '/stats'],
];
