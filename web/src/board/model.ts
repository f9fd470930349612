// A moodboard's Yjs document as the canvas uses it (the layout is docs/crdt-layout.md):
// `content` holds `brief` and `items`, each item a map of its own fields, so two people
// moving or captioning different items, or different fields of one item, both keep their
// change. The canvas reads an immutable snapshot that changes only where the document did,
// and writes through here, in this person's name, so that undo takes back only their own
// changes.
import * as Y from 'yjs';

export type ItemType = 'image' | 'note' | 'swatch' | 'link';
export const ITEM_TYPES: readonly ItemType[] = ['image', 'note', 'swatch', 'link'];

export interface Item {
  id: string;
  type: ItemType;
  x: number;
  y: number;
  w: number;
  h: number;
  z: number;
  rotation?: number;
  /** SHA-256 of the image in the workspace's assets. */
  asset?: string;
  caption?: string;
  /** A note's text. */
  text?: string;
  url?: string;
  /** `#rrggbb`: a swatch's colour, a note's paper. */
  color?: string;
  tags?: string[];
  /** Items with the same group move and select together. */
  group?: string;
  /** The generation that made an image: prompt, provider, model, seed, parameters, time, QC. */
  source?: Record<string, unknown>;
  /** A placeholder a generation is painting (gone once its image is in). */
  generation?: Generation;
  /** The images it showed before, oldest first (replacing an image keeps the one it had). */
  versions?: ImageVersion[];
}

/** An image an item showed before it was replaced. */
export interface ImageVersion {
  asset: string;
  /** The item's size while it showed this image. */
  w: number;
  h: number;
  /** How that image was made, when it was generated. */
  source?: Record<string, unknown>;
  /** When it was replaced (RFC 3339) and by whom. */
  replaced_at?: string;
  by?: string;
}

/** The most earlier images one item keeps (the server's limit); the oldest go first. */
export const MAX_VERSIONS = 20;

/** The change that puts `next` in an image item's place, keeping what it showed as a version. */
export function replaceImage(
  item: Pick<Item, 'asset' | 'source' | 'versions' | 'w' | 'h'>,
  next: { asset: string; width: number; height: number; source?: Record<string, unknown> },
  by: string,
  at = new Date(),
): ItemChange {
  const versions = [...(item.versions ?? [])];
  if (item.asset && item.asset !== next.asset) {
    versions.push({
      asset: item.asset,
      w: item.w,
      h: item.h,
      ...(item.source ? { source: item.source } : {}),
      replaced_at: at.toISOString(),
      by,
    });
  }
  // The same width; the height the new image's shape asks for.
  const h = Math.max(1, Math.round((item.w * next.height) / Math.max(1, next.width)));
  return {
    asset: next.asset,
    source: next.source,
    h,
    versions: versions.filter((v) => v.asset !== next.asset).slice(-MAX_VERSIONS),
  };
}

/** The change that brings back the `index`th earlier image (at its size then), keeping the
 * one shown now as a version. */
export function restoreVersion(
  item: Pick<Item, 'asset' | 'source' | 'versions' | 'w' | 'h'>,
  index: number,
  by: string,
  at = new Date(),
): ItemChange | null {
  const version = item.versions?.[index];
  if (!version) return null;
  const change = replaceImage(item, { asset: version.asset, source: version.source, width: version.w, height: version.h }, by, at);
  return { ...change, w: version.w, h: version.h };
}

/** Where a placeholder stands: written by the server's `board_images` as it paints. */
export interface Generation {
  context: string;
  status: 'queued' | 'painting' | 'retrying' | 'waiting' | 'rejected' | 'failed' | 'stopped';
  /** 0 to 1, while painting. */
  progress: number;
  round?: number;
  /** Why the last image was refused, or why it stopped. */
  reason?: string;
}

/** A placeholder whose generation ended without an image: it stays until someone removes it. */
export const settled = (g: Generation) => g.status === 'rejected' || g.status === 'failed' || g.status === 'stopped';

export interface Brief {
  room_type?: string;
  style?: string;
  palette?: string[];
  notes?: string;
  /** SHA-256s of the images generations from the brief paint from, in turn, where the
   * provider can. */
  references?: string[];
}

/** What the server accepts (crates/quire-collab/src/board.rs). */
export const MAX_ITEMS = 5_000;
export const MAX_REFERENCES = 4;
export const MAX_TEXT = 10_000;

export type NewItem = Omit<Item, 'id' | 'z'> & { id?: string; z?: number };
export type ItemChange = Partial<Omit<Item, 'id'>>;

export function newId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  return 'i' + Array.from(bytes, (b) => b.toString(36).padStart(2, '0')).join('');
}

const number = (v: unknown, fallback: number) => (typeof v === 'number' && Number.isFinite(v) ? v : fallback);

/** An item's fields as the canvas needs them; anything malformed gets a sensible value. */
export function readItem(id: string, raw: Record<string, unknown>): Item | null {
  const type = raw.type as ItemType;
  if (!ITEM_TYPES.includes(type)) return null;
  const item: Item = {
    id,
    type,
    x: number(raw.x, 0),
    y: number(raw.y, 0),
    w: Math.max(1, number(raw.w, 200)),
    h: Math.max(1, number(raw.h, 200)),
    z: number(raw.z, 0),
  };
  if (typeof raw.rotation === 'number') item.rotation = raw.rotation;
  for (const key of ['asset', 'caption', 'text', 'url', 'color', 'group'] as const) {
    if (typeof raw[key] === 'string') item[key] = raw[key];
  }
  if (Array.isArray(raw.tags)) item.tags = raw.tags.filter((t): t is string => typeof t === 'string');
  if (raw.source && typeof raw.source === 'object') item.source = raw.source as Record<string, unknown>;
  if (Array.isArray(raw.versions)) {
    item.versions = raw.versions.filter(
      (v): v is ImageVersion =>
        !!v && typeof v === 'object' && typeof (v as ImageVersion).asset === 'string' && number((v as ImageVersion).w, 0) > 0 && number((v as ImageVersion).h, 0) > 0,
    );
  }
  const g = raw.generation as Record<string, unknown> | undefined;
  if (g && typeof g === 'object' && typeof g.context === 'string') {
    item.generation = {
      context: g.context,
      status: (typeof g.status === 'string' ? g.status : 'queued') as Generation['status'],
      progress: number(g.progress, 0),
      round: typeof g.round === 'number' ? g.round : undefined,
      reason: typeof g.reason === 'string' ? g.reason : undefined,
    };
  }
  return item;
}

/** A JSON value as the server writes it: every object a map of its own. */
function toY(value: unknown): unknown {
  if (value && typeof value === 'object' && !Array.isArray(value)) {
    return new Y.Map(Object.entries(value).filter(([, v]) => v !== undefined).map(([k, v]) => [k, toY(v)]));
  }
  return value;
}

const same = (a: unknown, b: unknown) => a === b || JSON.stringify(a) === JSON.stringify(b);

export class BoardModel {
  readonly doc: Y.Doc;
  readonly content: Y.Map<unknown>;
  /** The origin of this person's changes: what undo tracks. */
  readonly origin = { board: true };
  readonly undoManager: Y.UndoManager;
  private snapshot = new Map<string, Item>();
  private briefSnapshot: Brief = {};
  private listeners = new Set<() => void>();

  constructor(doc: Y.Doc) {
    this.doc = doc;
    this.content = doc.getMap('content');
    this.undoManager = new Y.UndoManager(this.content, { trackedOrigins: new Set([this.origin]), captureTimeout: 400 });
    this.rebuild();
    this.content.observeDeep(this.onChange);
  }

  destroy() {
    this.content.unobserveDeep(this.onChange);
    this.undoManager.destroy();
    this.listeners.clear();
  }

  /** The items now, by id. A new map whenever any item changed; unchanged items keep their object. */
  items(): ReadonlyMap<string, Item> {
    return this.snapshot;
  }

  brief(): Brief {
    return this.briefSnapshot;
  }

  subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  private itemsMap(): Y.Map<Y.Map<unknown>> | null {
    const items = this.content.get('items');
    return items instanceof Y.Map ? (items as Y.Map<Y.Map<unknown>>) : null;
  }

  private readOne(id: string): Item | null {
    const raw = this.itemsMap()?.get(id);
    return raw instanceof Y.Map ? readItem(id, raw.toJSON()) : null;
  }

  private rebuild() {
    const next = new Map<string, Item>();
    this.itemsMap()?.forEach((raw, id) => {
      const item = raw instanceof Y.Map ? readItem(id, raw.toJSON()) : null;
      if (item) next.set(id, item);
    });
    this.snapshot = next;
    const brief = this.content.get('brief');
    this.briefSnapshot = brief instanceof Y.Map ? (brief.toJSON() as Brief) : {};
  }

  private onChange = (events: Y.YEvent<Y.AbstractType<unknown>>[]) => {
    const touched = new Set<string>();
    let whole = false;
    let brief = false;
    for (const event of events) {
      const path = event.path;
      if (path.length === 0) {
        // `items` or `brief` themselves were replaced (or made).
        if (event.changes.keys.has('items')) whole = true;
        if (event.changes.keys.has('brief')) brief = true;
      } else if (path[0] === 'brief') {
        brief = true;
      } else if (path[0] === 'items') {
        if (path.length === 1) event.changes.keys.forEach((_, id) => touched.add(id));
        else touched.add(String(path[1]));
      }
    }
    if (whole) {
      this.rebuild();
    } else {
      if (touched.size > 0) {
        const next = new Map(this.snapshot);
        for (const id of touched) {
          const item = this.readOne(id);
          if (item) next.set(id, item);
          else next.delete(id);
        }
        this.snapshot = next;
      }
      if (brief) {
        const b = this.content.get('brief');
        this.briefSnapshot = b instanceof Y.Map ? (b.toJSON() as Brief) : {};
      }
    }
    this.listeners.forEach((l) => l());
  };

  /** Runs `f` as one change in this person's name. */
  transact(f: () => void) {
    this.doc.transact(f, this.origin);
  }

  /** Makes the board's maps if the document has none yet (Quire makes them with the board). */
  ensureMaps() {
    if (this.itemsMap() && this.content.get('brief') instanceof Y.Map) return;
    this.doc.transact(() => {
      if (!this.itemsMap()) this.content.set('items', new Y.Map());
      if (!(this.content.get('brief') instanceof Y.Map)) this.content.set('brief', new Y.Map());
    });
  }

  topZ(): number {
    let z = 0;
    this.snapshot.forEach((i) => (z = Math.max(z, i.z)));
    return z;
  }

  /** Adds items on top of the others; returns their ids. */
  add(items: NewItem[]): string[] {
    if (this.snapshot.size + items.length > MAX_ITEMS) {
      throw new Error(`A board holds at most ${MAX_ITEMS.toLocaleString()} items: start another board for the rest.`);
    }
    this.ensureMaps();
    const ids: string[] = [];
    let z = this.topZ();
    this.transact(() => {
      const map = this.itemsMap()!;
      for (const item of items) {
        const id = item.id ?? newId();
        ids.push(id);
        map.set(id, toY({ ...item, id: undefined, z: item.z ?? ++z }) as Y.Map<unknown>);
      }
    });
    return ids;
  }

  /** Changes fields of items, only those that differ; `undefined` removes a field. */
  update(changes: Record<string, ItemChange>) {
    const map = this.itemsMap();
    if (!map) return;
    this.transact(() => {
      for (const [id, change] of Object.entries(changes)) {
        const item = map.get(id);
        if (!(item instanceof Y.Map)) continue;
        for (const [key, value] of Object.entries(change)) {
          if (value === undefined) {
            if (item.has(key)) item.delete(key);
          } else if (!same(item.get(key) instanceof Y.Map ? (item.get(key) as Y.Map<unknown>).toJSON() : item.get(key), value)) {
            item.set(key, toY(value));
          }
        }
      }
    });
  }

  remove(ids: Iterable<string>) {
    const map = this.itemsMap();
    if (!map) return;
    this.transact(() => {
      for (const id of ids) map.delete(id);
    });
  }

  setBrief(change: Partial<Brief>) {
    this.ensureMaps();
    const brief = this.content.get('brief') as Y.Map<unknown>;
    this.transact(() => {
      for (const [key, value] of Object.entries(change)) {
        if (value === undefined || value === '') brief.delete(key);
        else if (!same(brief.get(key), value)) brief.set(key, value);
      }
    });
  }

  undo() {
    this.undoManager.undo();
  }

  redo() {
    this.undoManager.redo();
  }

  /** Everything from here until `end` is one step of undo (a whole drag, however long). */
  beginGesture(): () => void {
    this.undoManager.stopCapturing();
    const before = this.undoManager.captureTimeout;
    this.undoManager.captureTimeout = Number.POSITIVE_INFINITY;
    return () => {
      this.undoManager.captureTimeout = before;
      this.undoManager.stopCapturing();
    };
  }
}
