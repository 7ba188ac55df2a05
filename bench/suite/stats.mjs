// Small helpers shared by the benchmark sections and their tables.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

export const median = (values) => {
  const sorted = values.filter((v) => !Number.isNaN(v)).sort((a, b) => a - b);
  if (!sorted.length) return NaN;
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};
export const ms = (v) => (Number.isNaN(v) || v === undefined ? '-' : v.toFixed(2));
export const round = (v) => (Number.isNaN(v) || v === undefined ? '-' : String(Math.round(v)));
export const verdict = (ok) => (ok ? 'PASS' : 'FAIL');
export const sleep = (msToWait) => new Promise((resolve) => setTimeout(resolve, msToWait));

/** Resident set size of `pid` in kB, from /proc (Linux). */
export function rssKb(pid) {
  const match = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match ? Number(match[1]) : NaN;
}

/** `pid` and every process under it, children first found through /proc/<pid>/task/<pid>/children. */
export function processTree(pid) {
  const pids = [pid];
  for (let i = 0; i < pids.length; i++) {
    try {
      const children = readFileSync(`/proc/${pids[i]}/task/${pids[i]}/children`, 'utf8').trim();
      if (children) pids.push(...children.split(/\s+/).map(Number));
    } catch { /* gone meanwhile */ }
  }
  return pids;
}

/**
 * Proportional set size of `pid` and everything under it, in kB: memory a process shares with
 * others (node's code, say) is split between them, so the sum is what the group costs the machine.
 */
export function treePssKb(pid) {
  let total = 0;
  for (const each of processTree(pid)) {
    try {
      const match = /^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${each}/smaps_rollup`, 'utf8'));
      if (match) total += Number(match[1]);
    } catch { /* gone meanwhile */ }
  }
  return total;
}

let ticksPerSecond;

/**
 * CPU time (user + system, ms) `pid` and everything under it have used so far, from
 * /proc/<pid>/stat: what a server spends on its requests, whatever else the machine runs.
 */
export function treeCpuMs(pid) {
  ticksPerSecond ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  let ticks = 0;
  for (const each of processTree(pid)) {
    try {
      const stat = readFileSync(`/proc/${each}/stat`, 'utf8');
      // Fields after the command name, which sits in parentheses and may hold spaces: state is
      // field 3, utime 14 and stime 15.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(fields[11]) + Number(fields[12]);
    } catch { /* gone meanwhile */ }
  }
  return (ticks * 1000) / ticksPerSecond;
}

/** Samples the RSS of `pid` every 10 ms until stop(), which returns the samples in kB. */
export function sampleRss(pid) {
  const samples = [];
  const timer = setInterval(() => {
    try { samples.push(rssKb(pid)); } catch { /* exiting */ }
  }, 10);
  return { stop: () => { clearInterval(timer); return samples; } };
}

export const mb = (kb) => (Number.isNaN(kb) || kb === undefined ? '-' : (kb / 1024).toFixed(1));
