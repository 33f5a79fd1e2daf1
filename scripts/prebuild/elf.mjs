/**
 * What a built addon asks of the system that loads it, read with binutils' readelf (any
 * architecture's ELF): machine, NEEDED libraries, required symbol versions, dynamic symbols.
 */
import { execFileSync } from 'node:child_process';

function readelf(args, file) {
  return execFileSync('readelf', ['-W', ...args, file], { encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' } });
}

/** ELF machine names as readelf prints them, by Node's arch. */
export const MACHINE = { x64: 'Advanced Micro Devices X86-64', arm64: 'AArch64' };

export function inspectElf(file) {
  const header = readelf(['-h'], file);
  const machine = /^\s*Machine:\s*(.+)$/m.exec(header)?.[1].trim();
  const type = /^\s*Type:\s*(\S+)/m.exec(header)?.[1];
  const dynamic = readelf(['-d'], file);
  const needed = [...dynamic.matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)].map((m) => m[1]);
  const soname = /\(SONAME\)\s+Library soname: \[([^\]]+)\]/.exec(dynamic)?.[1];
  // Version needs: "  0x0010:   Name: GLIBC_2.17  Flags: none  Version: 3" under "File: libc.so.6".
  const versionText = readelf(['-V'], file);
  const needs = versionText.split(/Version needs section/)[1] ?? '';
  const versions = [...needs.matchAll(/Name: (\S+)\s+Flags/g)].map((m) => m[1]);
  const symbols = readelf(['--dyn-syms'], file)
    .split('\n')
    .map((line) => line.trim().split(/\s+/))
    // Num: Value Size Type Bind Vis Ndx Name
    .filter((f) => /^\d+:$/.test(f[0] ?? '') && f.length >= 8)
    .map((f) => ({ type: f[3], bind: f[4], defined: f[6] !== 'UND', name: f[7].replace(/@.*$/, ''), version: /@+(.*)$/.exec(f[7])?.[1] }))
    .filter((s) => s.name !== '');
  // Program headers: "  LOAD  0x000000 0x... 0x... 0x006ba4 0x006ba4 R E 0x10000"; the last field is the alignment.
  const loadAlignments = readelf(['-l'], file)
    .split('\n')
    .filter((line) => /^\s*LOAD\s/.test(line))
    .map((line) => Number(line.trim().split(/\s+/).at(-1)));
  return { machine, type, needed, soname, versions, hasVersionNeeds: needs.trim() !== '', symbols, loadAlignments };
}

/** The newest GLIBC_x.y a file needs ("2.17"), or undefined when it needs none. */
export function newestGlibc(versions, compare) {
  const glibc = versions.filter((v) => v.startsWith('GLIBC_')).map((v) => v.slice('GLIBC_'.length));
  return glibc.sort(compare).at(-1);
}
