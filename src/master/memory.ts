import { readFile } from 'node:fs/promises';

/**
 * A process's resident set size in bytes, from `/proc/<pid>/status` (`VmRSS`), or undefined where
 * there is no such file (not Linux, or the process is gone). Read by the master, it covers every
 * kind of worker, plain commands and native builds included; it counts the process itself, not
 * children it started.
 */
export async function residentSetSize(pid: number): Promise<number | undefined> {
  let status: string;
  try {
    status = await readFile(`/proc/${pid}/status`, 'utf8');
  } catch {
    return undefined;
  }
  const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  return match ? Number(match[1]) * 1024 : undefined;
}
