// Small helpers shared by the benchmark sections and their tables.
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

/** Samples the RSS of `pid` every 10 ms until stop(), which returns the samples in kB. */
export function sampleRss(pid) {
  const samples = [];
  const timer = setInterval(() => {
    try { samples.push(rssKb(pid)); } catch { /* exiting */ }
  }, 10);
  return { stop: () => { clearInterval(timer); return samples; } };
}

export const mb = (kb) => (Number.isNaN(kb) || kb === undefined ? '-' : (kb / 1024).toFixed(1));
