/** What a GitHub release's REST representation holds that the fetcher uses. */
export interface GitHubRelease {
  tag_name: string;
  draft: boolean;
  prerelease: boolean;
  published_at?: string | null;
  created_at?: string | null;
  assets: GitHubAsset[];
}

/** One file attached to a release, as the REST API describes it. */
export interface GitHubAsset {
  id: number;
  name: string;
  size: number;
  content_type?: string;
  url?: string;
  browser_download_url?: string;
}

/**
 * How {@link GitHubFetcher} picks the release asset that is the build: an exact file name, a
 * RegExp tested against the names, or a function given every asset of the release.
 */
export type GitHubAssetRule = string | RegExp | ((assets: readonly GitHubAsset[]) => GitHubAsset | undefined);

/** Names of files that publish checksums for every asset of a release. */
const CHECKSUMS_FILE = /^(checksums\.txt|sha256sums(\.txt)?|.+[._-]checksums\.txt)$/i;
/** Checksums, signatures and certificates: never the build itself. */
const SIDE_FILE = /\.(sha256|sha256sum|sha512|sha512sum|minisig|sig|asc|pem)$/i;

/** Whether an asset is a checksum or signature file rather than a build. */
export function isSideFile(name: string): boolean {
  return CHECKSUMS_FILE.test(name) || SIDE_FILE.test(name);
}

/** The checksum file that covers `asset`: its own `<name>.sha256` first, else a release-wide one. */
export function checksumFileFor(assets: readonly GitHubAsset[], asset: GitHubAsset): GitHubAsset | undefined {
  return assets.find((candidate) => candidate.name === `${asset.name}.sha256`) ?? assets.find((candidate) => CHECKSUMS_FILE.test(candidate.name));
}

/** The asset's minisign signature file, `<name>.minisig`. */
export function signatureFileFor(assets: readonly GitHubAsset[], asset: GitHubAsset): GitHubAsset | undefined {
  return assets.find((candidate) => candidate.name === `${asset.name}.minisig`);
}

/** Reads a release out of parsed JSON; a string saying what is wrong when it is not one. */
export function asRelease(value: unknown): GitHubRelease | string {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'the answer is not a release object';
  const release = value as Record<string, unknown>;
  if (typeof release.tag_name !== 'string' || release.tag_name === '') return 'the release has no tag_name';
  if (!Array.isArray(release.assets)) return `release ${release.tag_name} has no assets list`;
  for (const asset of release.assets as unknown[]) {
    const fields = (asset ?? {}) as Record<string, unknown>;
    if (!Number.isSafeInteger(fields.id) || typeof fields.name !== 'string' || typeof fields.size !== 'number') {
      return `release ${release.tag_name} has an asset without a numeric id, a name and a size`;
    }
  }
  return { ...(release as unknown as GitHubRelease), draft: release.draft === true, prerelease: release.prerelease === true };
}

/** The newest published release of a list (pre-releases included, drafts never); undefined when there is none. */
export function newestPublished(releases: readonly GitHubRelease[]): GitHubRelease | undefined {
  const published = releases.filter((release) => !release.draft);
  const time = (release: GitHubRelease) => Date.parse(release.published_at ?? release.created_at ?? '') || 0;
  // GitHub lists newest first; a stable sort by date keeps its order where dates are missing or equal.
  return [...published].sort((a, b) => time(b) - time(a))[0];
}

/** Tokens in asset names for each platform and architecture Node reports. */
const PLATFORM_WORDS: Record<string, string[]> = {
  linux: ['linux'],
  darwin: ['darwin', 'macos', 'osx'],
  win32: ['win', 'windows', 'win32', 'win64'],
};
const ARCH_WORDS: Record<string, string[]> = {
  x64: ['x64', 'amd64', 'x86_64', 'x86-64'],
  arm64: ['arm64', 'aarch64'],
};

function hasWord(name: string, words: readonly string[]): boolean {
  const lower = name.toLowerCase();
  return words.some((word) => {
    for (let at = lower.indexOf(word); at !== -1; at = lower.indexOf(word, at + 1)) {
      const before = lower[at - 1];
      const after = lower[at + word.length];
      if ((before === undefined || !/[a-z0-9]/.test(before)) && (after === undefined || !/[a-z0-9]/.test(after))) return true;
    }
    return false;
  });
}

/** Where the asset choice stands: the asset, or why there is none (for a message that lists names). */
export type AssetChoice = { asset: GitHubAsset } | { problem: string };

/**
 * Picks the build among a release's assets. With a rule, the rule decides. Without one,
 * checksum and signature files are set aside; a single remaining asset is the build, else the
 * one whose name names this platform and this architecture (`linux`, `darwin`/`macos`,
 * `win`/`windows`; `x64`/`amd64`/`x86_64`, `arm64`/`aarch64`).
 */
export function chooseAsset(
  release: GitHubRelease,
  rule: GitHubAssetRule | undefined,
  platform: string = process.platform,
  arch: string = process.arch,
): AssetChoice {
  const { assets, tag_name: tag } = release;
  const all = names(assets);
  const fix = 'set the asset option to the file name, a RegExp or a function that picks one';
  if (typeof rule === 'string') {
    const asset = assets.find((candidate) => candidate.name === rule);
    return asset ? { asset } : { problem: `release ${tag} has no asset named ${JSON.stringify(rule)}; its assets: ${all}; fix the asset option` };
  }
  if (rule instanceof RegExp) {
    const matching = assets.filter((candidate) => testOnce(rule, candidate.name));
    const builds = matching.filter((candidate) => !isSideFile(candidate.name));
    const chosen = builds.length > 0 ? builds : matching;
    if (chosen.length === 1) return { asset: chosen[0]! };
    if (chosen.length === 0) return { problem: `no asset of release ${tag} matches ${String(rule)}; its assets: ${all}; fix the asset option` };
    return { problem: `several assets of release ${tag} match ${String(rule)}: ${names(chosen)}; make the asset option match one` };
  }
  if (typeof rule === 'function') {
    let picked: GitHubAsset | undefined;
    try {
      picked = rule(Object.freeze(assets.map((asset) => Object.freeze({ ...asset }))));
    } catch (error) {
      return { problem: `the asset function threw for release ${tag}: ${error instanceof Error ? error.message : String(error)}` };
    }
    const asset = picked === undefined ? undefined : assets.find((candidate) => candidate.id === picked.id && candidate.name === picked.name);
    if (asset) return { asset };
    return { problem: `the asset function chose ${picked === undefined ? 'none' : 'an asset that is not'} of release ${tag}'s assets (${all}); return one of the assets it is given` };
  }

  const builds = assets.filter((candidate) => !isSideFile(candidate.name));
  if (builds.length === 1) return { asset: builds[0]! };
  if (builds.length === 0) return { problem: `release ${tag} has no asset that is a build (only: ${all || 'none'}); attach the build to the release` };
  const platformWords = PLATFORM_WORDS[platform] ?? [platform];
  const archWords = ARCH_WORDS[arch] ?? [arch];
  const here = builds.filter((candidate) => hasWord(candidate.name, platformWords) && hasWord(candidate.name, archWords));
  if (here.length === 1) return { asset: here[0]! };
  const machine = `${platform} ${arch}`;
  if (here.length === 0) return { problem: `release ${tag} has no asset for this machine (${machine}) among ${names(builds)}; ${fix}` };
  return { problem: `release ${tag} has several assets for this machine (${machine}): ${names(here)}; ${fix}` };
}

function names(assets: readonly GitHubAsset[]): string {
  return assets.map((asset) => asset.name).join(', ');
}

/** `RegExp.test` without the `lastIndex` state a global or sticky RegExp keeps between calls. */
function testOnce(pattern: RegExp, text: string): boolean {
  pattern.lastIndex = 0;
  return pattern.test(text);
}

/** A tag as a version: without a leading `v`. */
export function versionOf(tag: string): string {
  return /^v\d/i.test(tag) ? tag.slice(1) : tag;
}

/**
 * Whether `tag` should replace `running`. Semver tags (a leading `v` ignored) must be greater,
 * unless downgrades are allowed; tags that are not both semver, or `allowDowngrade`, count any
 * different tag as new. semver loads only here, in the master.
 */
export async function isNewRelease(tag: string, running: string | undefined, allowDowngrade: boolean): Promise<boolean> {
  if (running === undefined) return true;
  const [next, current] = [versionOf(tag), versionOf(running)];
  if (next === current) return false;
  if (allowDowngrade) return true;
  const { default: semver } = await import('semver');
  const [nextVersion, currentVersion] = [semver.parse(next), semver.parse(current)];
  if (nextVersion && currentVersion) return semver.gt(nextVersion, currentVersion);
  return true;
}
