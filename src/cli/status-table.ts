/** `overseer status` as a person reads it: short lines that fit a terminal, times made human. */
import type { GenerationStatus, MasterStatus } from '../master/status.js';
import type { SourceStatus, UpgradeRecord } from '../master/upgrade/status.js';

/** Build ids are SHA-256 hex; 12 digits tell builds apart as well as git's short hashes do. */
export function shortId(buildId: string | undefined): string {
  return buildId ? buildId.slice(0, 12) : '-';
}

/** `850ms`, `45s`, `3m12s`, `2h05m`, `3d04h`: two units at most, the largest first. */
export function humanizeDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '-';
  const seconds = Math.floor(ms / 1000);
  const two = (n: number) => String(n).padStart(2, '0');
  if (seconds < 60) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes}m${two(seconds % 60)}s`;
  const hours = Math.floor(minutes / 60);
  if (hours < 24) return `${hours}h${two(minutes % 60)}m`;
  return `${Math.floor(hours / 24)}d${two(hours % 24)}h`;
}

/** A restart's or download's length: `850ms`, `1.2s`, then as `humanizeDuration`. */
export function formatElapsed(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  return humanizeDuration(ms);
}

function ago(at: string | undefined, now: number): string {
  if (!at) return 'never';
  const ms = now - Date.parse(at);
  return Number.isFinite(ms) ? `${humanizeDuration(Math.max(0, ms))} ago` : at;
}

function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? '' : 's'}`;
}

/** Cuts `text` to `width` columns, marking the cut. */
export function fit(text: string, width: number): string {
  return text.length <= width ? text : `${text.slice(0, Math.max(0, width - 3))}...`;
}

/** Cuts a path from the left: its end (the file's name) says more than its start. */
function fitPath(path: string, width: number): string {
  return path.length <= width ? path : `...${path.slice(path.length - Math.max(0, width - 3))}`;
}

/** Breaks `text` at spaces into lines of at most `width`, `maxLines` at most (the last one cut). */
export function wrap(text: string, width: number, maxLines = 3): string[] {
  const lines: string[] = [];
  let rest = text;
  while (rest.length > width && lines.length < maxLines - 1) {
    const space = rest.lastIndexOf(' ', width);
    const cut = space > width / 3 ? space : width;
    lines.push(rest.slice(0, cut).trimEnd());
    rest = rest.slice(cut).trimStart();
  }
  lines.push(fit(rest, width));
  return lines;
}

/** Left-aligned columns two spaces apart. */
function table(rows: string[][]): string[] {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, column) => (widths[column] = Math.max(widths[column] ?? 0, cell.length)));
  return rows.map((row) => row.map((cell, column) => (column === row.length - 1 ? cell : cell.padEnd(widths[column] ?? 0))).join('  '));
}

function workerRows(generations: readonly GenerationStatus[]): string[][] {
  const rows = [['GEN', 'STATE', 'BUILD', 'PID', 'SLOT', 'PHASE', 'UPTIME', 'RESTARTS']];
  for (const generation of generations) {
    const common = [String(generation.number), generation.state, shortId(generation.buildId)];
    if (generation.workers.length === 0) rows.push([...common, '-', '-', 'none', '-', '-']);
    const workers = [...generation.workers].sort((a, b) => a.slot - b.slot);
    workers.forEach((worker, index) => {
      // The generation's cells once, on its first worker: the eye groups the rows below it.
      const lead = index === 0 ? common : ['', '', ''];
      rows.push([...lead, String(worker.pid ?? '-'), String(worker.slot), worker.phase, humanizeDuration(worker.uptimeMs), String(worker.restarts)]);
    });
  }
  return rows;
}

/** The last restart: its outcome on one line, what asked for it on the next. */
function describeRestart(status: MasterStatus, now: number): string[] {
  const last = status.lastRestart;
  if (!last) return ['none since the master started'];
  const when = ago(last.at, now);
  const asked = `asked: ${last.reason}`;
  if (last.ok) return [`ok, generation ${last.generation} ready in ${formatElapsed(last.durationMs)}, ${when}`, asked];
  const generation = last.generation === undefined ? '' : ` generation ${last.generation}`;
  return [`ABANDONED${generation}, ${when}: ${last.reason}`, asked];
}

function describeSource(source: SourceStatus, now: number): string {
  const result = source.lastResult ?? 'not checked yet';
  const failure = source.lastError ? `: ${source.lastError}` : '';
  const streak = source.consecutiveFailures > 1 ? ` (${source.consecutiveFailures} failures in a row)` : '';
  return `checked ${ago(source.lastCheckAt, now)}: ${result}${failure}${streak}`;
}

function describeUpgrade(upgrade: UpgradeRecord | undefined, now: number): string {
  if (!upgrade) return 'none since the master started';
  const version = upgrade.version ? ` (${upgrade.version})` : '';
  const reason = upgrade.reason ? `: ${upgrade.reason}` : '';
  return `${upgrade.outcome} build ${shortId(upgrade.buildId)}${version}, ${ago(upgrade.at, now)}${reason}`;
}

/**
 * The status as lines no longer than `width`: the master, a table of workers by generation
 * (draining ones included), the last restart, each source's last check and the last upgrade.
 */
export function formatStatus(status: MasterStatus, options: { now?: number; width?: number } = {}): string {
  const now = options.now ?? Date.now();
  const width = options.width ?? 80;
  const lines: string[] = [];
  const label = (name: string, value: string) => {
    wrap(value, width - 14).forEach((part, index) => lines.push(`${(index === 0 ? name : '').padEnd(14)}${part}`));
  };
  lines.push(fit(`overseer master ${status.pid}, up ${humanizeDuration(status.uptimeMs)}`, width));
  const version = status.build.running.version ? `  version ${status.build.running.version}` : '';
  label('build', `${shortId(status.build.running.buildId)}${version}`);
  label('entry', fitPath(status.binPath, width - 14));
  if (status.addresses.length === 0) label('addresses', 'none');
  for (const address of status.addresses) label('address', fitPath(address, width - 14));
  const draining = status.generations.filter((generation) => generation.state === 'draining');
  if (draining.length > 0) {
    const list = draining.map((generation) => `${generation.number} (${plural(generation.workers.length, 'worker')})`).join(', ');
    label('draining', `generation ${list}`);
  }
  if (status.spares > 0) label('warm spares', `${status.spares} booted, waiting for the next restart`);
  lines.push('');
  for (const row of table(workerRows(status.generations))) lines.push(fit(row, width));
  lines.push('');
  describeRestart(status, now).forEach((text, index) => label(index === 0 ? 'last restart' : '', text));
  if (status.build.sources.length === 0) label('source', 'none (no fetcher configured)');
  for (const source of status.build.sources) {
    label('source', fitPath(source.source, width - 14));
    label('', describeSource(source, now));
  }
  label('last upgrade', describeUpgrade(status.build.lastUpgrade, now));
  return `${lines.join('\n')}\n`;
}
