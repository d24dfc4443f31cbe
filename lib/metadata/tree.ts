/**
 * The metadata a GCE metadata server answers from, as a tree: directories, values,
 * and the two leaves that mint (token, identity). Rendering follows GCE: a directory
 * lists its entries one a line (subdirectories with a trailing slash), `?recursive=true`
 * gives the whole subtree as JSON with camelCase keys, `?alt=json` gives a value as JSON.
 */

/** A leaf whose answer is minted per request (an access or ID token for one account). */
export class MintedLeaf {
  constructor(
    readonly kind: 'token' | 'identity',
    /** The account as it was named in the path: 'default' or an email. */
    readonly account: string,
  ) {}
}

/** A numeric id as GCE writes it in JSON: a bare number, with every digit (ids exceed 2^53). */
class Digits {
  constructor(readonly digits: string) {}
}

type Value = string | Digits | readonly string[];
export interface Directory {
  readonly [name: string]: Node;
}
export type Node = Value | Directory | MintedLeaf;

/** What a server is configured with; every field but email has a sensible absence. */
interface MetadataValues {
  email: string;
  scopes: readonly string[];
  projectId?: string;
  numericProjectId?: string;
  instanceId?: string;
  /** A zone name (us-central1-a) or GCE's full form (projects/N/zones/us-central1-a). */
  zone?: string;
  universeDomain: string;
}

const isMinted = (node: Node): node is MintedLeaf => node instanceof MintedLeaf;
const isDirectory = (node: Node): node is Directory =>
  typeof node === 'object' && !(node instanceof Digits) && !(node instanceof MintedLeaf) && !Array.isArray(node);

/** The tree under /computeMetadata/v1/ for `values`: what is not known is absent (404). */
export function metadataTree(values: MetadataValues): Directory {
  const account = (name: string): Directory => ({
    aliases: ['default'],
    email: values.email,
    scopes: values.scopes,
    token: new MintedLeaf('token', name),
    identity: new MintedLeaf('identity', name),
  });
  const project: Record<string, Node> = { attributes: {} };
  if (values.projectId !== undefined) project['project-id'] = values.projectId;
  if (values.numericProjectId !== undefined) project['numeric-project-id'] = new Digits(values.numericProjectId);
  const instance: Record<string, Node> = {
    attributes: {},
    'service-accounts': { default: account('default'), [values.email]: account(values.email) },
  };
  if (values.instanceId !== undefined) instance['id'] = new Digits(values.instanceId);
  if (values.zone !== undefined) instance['zone'] = fullZone(values.zone, values.numericProjectId ?? values.projectId);
  return { instance, project, universe: { 'universe-domain': values.universeDomain } };
}

function fullZone(zone: string, project: string | undefined): string {
  return zone.includes('/') || project === undefined ? zone : `projects/${project}/zones/${zone}`;
}

/** The node at `segments` (path parts below /computeMetadata/v1/), or undefined. */
export function lookup(tree: Directory, segments: readonly string[]): Node | undefined {
  let node: Node = tree;
  for (const segment of segments) {
    if (!isDirectory(node) || !Object.hasOwn(node, segment)) return undefined;
    node = node[segment]!;
  }
  return node;
}

/**
 * Every path below `base` that names a node, spelled as clients send it (no percent
 * escapes), with and without a trailing slash: what lookup finds there, in one Map
 * lookup. Names a plain path cannot spell (with '/' or '%') are left to lookup.
 */
export function pathIndex(tree: Directory, base: string): ReadonlyMap<string, Node> {
  const index = new Map<string, Node>();
  const visit = (node: Node, path: string) => {
    index.set(path, node);
    index.set(`${path}/`, node);
    if (!isDirectory(node)) return;
    for (const [name, child] of Object.entries(node)) if (!/[/%]/.test(name)) visit(child, `${path}/${name}`);
  };
  visit(tree, base);
  return index;
}

export type Rendered =
  { readonly type: 'text' | 'json'; readonly body: string } | { readonly type: 'minted'; readonly leaf: MintedLeaf };

/** How GCE answers for `node` with the request's `recursive` and `alt` parameters. */
export function render(node: Node, options: { recursive: boolean; json: boolean }): Rendered {
  if (isMinted(node)) return { type: 'minted', leaf: node };
  if (isDirectory(node)) {
    if (options.recursive) return { type: 'json', body: toJson(recursiveValue(node)) };
    const names = Object.keys(node)
      .sort()
      .map((name) => (isDirectory(node[name]!) ? `${name}/` : name));
    return options.json ? { type: 'json', body: toJson(names) } : { type: 'text', body: names.join('\n') + '\n' };
  }
  if (options.json) return { type: 'json', body: toJson(node) };
  if (node instanceof Digits) return { type: 'text', body: node.digits };
  return { type: 'text', body: typeof node === 'string' ? node : node.join('\n') + '\n' };
}

/** A directory as recursive JSON: camelCase keys, minted leaves left out (as GCE leaves out tokens). */
function recursiveValue(directory: Directory): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, node] of Object.entries(directory)) {
    if (isMinted(node)) continue;
    // Email-named entries (service accounts) keep their names; hyphenated ones become camelCase.
    const key = name.includes('@') ? name : name.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
    out[key] = isDirectory(node) ? recursiveValue(node) : node;
  }
  return out;
}

const DIGITS_MARK = '\u0000digits:';

/** JSON.stringify, except that Digits are written as bare numbers with all their digits. */
function toJson(value: unknown): string {
  const text = JSON.stringify(value, (_key, v: unknown) => (v instanceof Digits ? `${DIGITS_MARK}${v.digits}` : v));
  return text.replace(/"\\u0000digits:([0-9]+)"/g, '$1');
}
