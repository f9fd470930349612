// A moodboard, edited together live: an endless plane of images, notes, colour swatches and
// links that people pan and zoom, drag, resize, align and group, with everyone's pointer and
// selection shown as they move. Each person's undo takes back their own changes only.
import { useCallback, useEffect, useLayoutEffect, useMemo, useRef, useState, useSyncExternalStore } from 'react';
import { useStore } from 'zustand';
import { collabFor, retain, type Collab } from '../collab/collab';
import { Presence, SaveBadge } from '../collab/Presence';
import { ApiError } from '../api/client';
import {
  align,
  between,
  bounds,
  distribute,
  fit,
  freeSpot,
  intersects,
  resizeBox,
  scaleInto,
  toPlane,
  toScreen,
  zoomAt,
  type Alignment,
  type Handle,
  type Rect,
  type View,
} from './geometry';
import { BoardModel, newId, replaceImage, restoreVersion, type ItemChange, type NewItem } from './model';
import { ItemView } from './ItemView';
import { IMAGE_TYPES, placedSize, uploadImage } from './assets';
import { exportPdf, exportPng } from './export';
import { BriefPanel } from './BriefPanel';
import { VersionsPanel } from './VersionsPanel';
import { VARIATIONS, generate, shapeOf, variations, type Variation } from './generate';
import { SourceCard } from './SourceCard';

interface Props {
  ws: string;
  docId: string;
  title: string;
  userId: string;
  userName: string;
  canEdit: boolean;
}

/** One board: its connection, kept open while the page shows it. */
export function Moodboard({ ws, docId, title, userId, userName, canEdit }: Props) {
  const collab = useMemo(() => collabFor(docId, { id: userId, name: userName }), [docId, userId, userName]);
  useEffect(() => retain(collab), [collab]);
  const model = useMemo(() => new BoardModel(collab.doc), [collab]);
  useEffect(() => () => model.destroy(), [model]);
  return <Canvas key={docId} ws={ws} docId={docId} title={title} collab={collab} model={model} canEdit={canEdit} />;
}

/** Another person's pointer and selection, as their browser announces them. */
interface Remote {
  clientId: number;
  name: string;
  color: string;
  pointer?: { x: number; y: number };
  selection: string[];
}

function useRemotes(collab: Collab): Remote[] {
  const awareness = collab.provider.awareness;
  const version = useSyncExternalStore(
    (notify) => {
      awareness.on('change', notify);
      return () => awareness.off('change', notify);
    },
    () => JSON.stringify([...awareness.getStates()].filter(([id]) => id !== awareness.clientID).map(([id, s]) => [id, s.user, s.pointer, s.selection])),
  );
  return useMemo(() => {
    void version;
    const out: Remote[] = [];
    awareness.getStates().forEach((s, clientId) => {
      if (clientId === awareness.clientID) return;
      const u = s.user as { name?: string; color?: string } | undefined;
      const p = s.pointer as { x?: unknown; y?: unknown } | null | undefined;
      out.push({
        clientId,
        name: u?.name ?? 'Someone',
        color: u?.color ?? '#888',
        pointer: p && typeof p.x === 'number' && typeof p.y === 'number' ? { x: p.x, y: p.y } : undefined,
        selection: Array.isArray(s.selection) ? (s.selection as unknown[]).filter((i): i is string => typeof i === 'string') : [],
      });
    });
    return out;
  }, [version, awareness]);
}

type Gesture =
  | { kind: 'move'; from: { x: number; y: number }; origin: Map<string, Rect>; end: () => void; moved: boolean; clicked: string }
  | { kind: 'resize'; handle: Handle; from: { x: number; y: number }; box: Rect; origin: Map<string, Rect>; aspect: boolean; end: () => void }
  | { kind: 'marquee'; from: { x: number; y: number }; to: { x: number; y: number }; base: Set<string> }
  | { kind: 'pan'; sx: number; sy: number; view: View };

const viewKey = (docId: string) => `quire-board-view:${docId}`;
/** Where the canvas's floating tools are: fitting keeps items clear of them. */
const TOOL_INSETS = { top: 64, right: 84, bottom: 64, left: 96 };
const NOTE_COLORS = ['#fff3bf', '#d3f9d8', '#d0ebff', '#ffdeeb', '#f1f3f5'];
/** Most selected ids announced to others (an awareness state stays small). */
const ANNOUNCED_SELECTION = 500;

function savedView(docId: string): View | null {
  try {
    const v = JSON.parse(localStorage.getItem(viewKey(docId)) ?? 'null') as View | null;
    return v && [v.x, v.y, v.zoom].every(Number.isFinite) ? v : null;
  } catch {
    return null;
  }
}

function isTyping(target: EventTarget | null): boolean {
  const el = target as HTMLElement | null;
  return !!el && (el.tagName === 'INPUT' || el.tagName === 'TEXTAREA' || el.tagName === 'SELECT' || el.isContentEditable);
}

function Canvas({ ws, docId, title, collab, model, canEdit }: { ws: string; docId: string; title: string; collab: Collab; model: BoardModel; canEdit: boolean }) {
  const items = useSyncExternalStore(model.subscribe, () => model.items());
  const ended = useStore(collab.status, (s) => s.ended);
  const save = useStore(collab.status, (s) => s.save);
  const editable = canEdit && !ended;
  const remotes = useRemotes(collab);
  const root = useRef<HTMLDivElement>(null);
  const [view, setView] = useState<View>(() => savedView(docId) ?? { x: 0, y: 0, zoom: 1 });
  const viewRef = useRef(view);
  useLayoutEffect(() => {
    viewRef.current = view;
  }, [view]);
  const [panning, setPanning] = useState(false);
  const [selection, setSelection] = useState<Set<string>>(new Set());
  const [editing, setEditing] = useState<string | null>(null);
  const [marquee, setMarquee] = useState<Rect | null>(null);
  const [uploads, setUploads] = useState<{ key: string; name: string; x: number; y: number }[]>([]);
  const [notices, setNotices] = useState<{ key: number; text: string }[]>([]);
  const [showHelp, setShowHelp] = useState(false);
  const [linkAt, setLinkAt] = useState<{ x: number; y: number } | null>(null);
  const [briefOpen, setBriefOpen] = useState(true);
  const [aligning, setAligning] = useState(false);
  const [aboutOpen, setAboutOpen] = useState(false);
  /** The selection whose item's versions are listed: any new selection closes the list. */
  const [versionsOf, setVersionsOf] = useState<Set<string> | null>(null);
  const replacePicker = useRef<HTMLInputElement>(null);
  /** The selection whose "More like this" menu is open: any new selection closes it. */
  const [varyingFor, setVaryingFor] = useState<Set<string> | null>(null);
  /** Generations this person started whose placeholders have not arrived yet. */
  const awaited = useRef<Set<string>>(new Set());
  const gesture = useRef<Gesture | null>(null);
  const spaceHeld = useRef(false);

  const notify = useCallback((text: string) => {
    const key = Date.now() + Math.random();
    setNotices((n) => [...n.slice(-3), { key, text }]);
    window.setTimeout(() => setNotices((n) => n.filter((x) => x.key !== key)), 8000);
  }, []);

  // The view is this browser's own: kept per board, fitted to the items on a first visit.
  useEffect(() => {
    const t = window.setTimeout(() => localStorage.setItem(viewKey(docId), JSON.stringify(view)), 300);
    return () => window.clearTimeout(t);
  }, [view, docId]);
  const fitted = useRef(savedView(docId) !== null);
  useEffect(() => {
    if (fitted.current || save === 'loading') return;
    fitted.current = true;
    const r = root.current?.getBoundingClientRect();
    if (r) setView(fit(bounds(items.values()), r.width, r.height, TOOL_INSETS));
  }, [save, items]);
  // A board made before Quire wrote its maps gets them on first use.
  useEffect(() => {
    if (editable && save !== 'loading') model.ensureMaps();
  }, [editable, save, model]);

  // Editing an item in place (a note's text, a caption) is one step of undo, however long.
  useEffect(() => (editing ? model.beginGesture() : undefined), [editing, model]);

  // Items gone (removed by someone) leave the selection.
  const liveSelection = useMemo(() => new Set([...selection].filter((id) => items.has(id))), [selection, items]);
  useEffect(() => {
    const ids = [...liveSelection].slice(0, ANNOUNCED_SELECTION);
    collab.provider.awareness.setLocalStateField('selection', ids);
  }, [liveSelection, collab]);
  useEffect(() => {
    const awareness = collab.provider.awareness;
    return () => {
      awareness.setLocalStateField('pointer', null);
      awareness.setLocalStateField('selection', []);
    };
  }, [collab]);

  const sorted = useMemo(() => [...items.values()].sort((a, b) => a.z - b.z || (a.id < b.id ? -1 : 1)), [items]);
  // A generation this person started shows its placeholders: bring them into view, with what
  // is around them, once they arrive.
  useEffect(() => {
    if (!awaited.current.size) return;
    const arrived = sorted.filter((i) => i.generation && awaited.current.has(i.generation.context));
    if (!arrived.length) return;
    arrived.forEach((i) => awaited.current.delete(i.generation!.context));
    const r = root.current?.getBoundingClientRect();
    const box = bounds(arrived);
    if (!r || !box) return;
    const v = viewRef.current;
    const [tl, br] = [toScreen(v, box.x, box.y), toScreen(v, box.x + box.w, box.y + box.h)];
    const visible = tl.x >= TOOL_INSETS.left && tl.y >= TOOL_INSETS.top && br.x <= r.width - TOOL_INSETS.right && br.y <= r.height - TOOL_INSETS.bottom;
    const near = { x: box.x - 600, y: box.y - 300, w: box.w + 1200, h: box.h + 600 };
    if (!visible) setView(fit(bounds([...arrived, ...sorted.filter((i) => intersects(i, near))]), r.width, r.height, TOOL_INSETS));
  }, [sorted]);
  const selected = useMemo(() => sorted.filter((i) => liveSelection.has(i.id)), [sorted, liveSelection]);
  const selectionBox = useMemo(() => bounds(selected), [selected]);

  /** `ids` and every item grouped with one of them. */
  const withGroups = useCallback(
    (ids: Iterable<string>) => {
      const out = new Set(ids);
      const groups = new Set([...out].map((id) => items.get(id)?.group).filter(Boolean));
      if (groups.size) items.forEach((i) => i.group && groups.has(i.group) && out.add(i.id));
      return out;
    },
    [items],
  );

  const planeAt = (clientX: number, clientY: number) => {
    const r = root.current!.getBoundingClientRect();
    return toPlane(viewRef.current, clientX - r.left, clientY - r.top);
  };
  const centre = () => {
    const r = root.current!.getBoundingClientRect();
    return toPlane(viewRef.current, r.width / 2, r.height / 2);
  };

  const change = useCallback((id: string, c: ItemChange) => model.update({ [id]: c }), [model]);
  const stopEditing = useCallback(() => setEditing(null), []);

  const add = useCallback(
    (list: NewItem[], edit = false) => {
      try {
        const ids = model.add(list);
        setSelection(new Set(ids));
        if (edit && ids.length === 1) setEditing(ids[0]!);
        return ids;
      } catch (e) {
        notify((e as Error).message);
        return [];
      }
    },
    [model, notify],
  );

  /** An item of `w` × `h` centred on `at`, or beside what is already there. */
  const placed = (at: { x: number; y: number }, w: number, h: number) => ({ ...freeSpot({ x: at.x - w / 2, y: at.y - h / 2, w, h }, items.values()), w, h });
  const addNote = (at = centre()) =>
    add([{ type: 'note', ...placed(at, 220, 140), text: '', color: NOTE_COLORS[items.size % NOTE_COLORS.length] }], true);
  const addSwatch = (at = centre()) => {
    const palette = model.brief().palette ?? [];
    const used = new Set([...items.values()].filter((i) => i.type === 'swatch').map((i) => i.color));
    const color = palette.find((c) => !used.has(c)) ?? '#c8b6a6';
    add([{ type: 'swatch', ...placed(at, 140, 160), color }], true);
  };

  const uploadFiles = async (files: File[], at = centre()) => {
    const images = files.filter((f) => IMAGE_TYPES.includes(f.type) || f.type === 'image/svg+xml' || !f.type);
    if (images.length < files.length) notify(`${files.length - images.length} file(s) skipped: only PNG, JPEG, WebP and GIF images go on a board.`);
    let n = 0;
    await Promise.all(
      images.map(async (file, k) => {
        const key = newId();
        const spot = { x: at.x + (k % 4) * 340 - 160, y: at.y + Math.floor(k / 4) * 340 - 160 };
        setUploads((u) => [...u, { key, name: file.name, ...spot }]);
        try {
          const asset = await uploadImage(ws, file);
          const size = placedSize(asset.width, asset.height);
          const ids = model.add([{ type: 'image', ...spot, ...size, asset: asset.sha256, caption: undefined }]);
          setSelection((s) => (n++ === 0 ? new Set(ids) : new Set([...s, ...ids])));
        } catch (e) {
          notify(e instanceof ApiError || e instanceof Error ? e.message : String(e));
        } finally {
          setUploads((u) => u.filter((x) => x.key !== key));
        }
      }),
    );
  };

  const removeOne = useCallback((id: string) => model.remove([id]), [model]);
  const startGeneration = useCallback(
    async (req: Parameters<typeof generate>[2]) => {
      awaited.current.add(await generate(ws, docId, req));
    },
    [ws, docId],
  );
  const moreLikeThis = async (id: string, how: Variation) => {
    const item = items.get(id);
    setVaryingFor(null);
    if (!item) return;
    try {
      await startGeneration({ count: 4, shape: shapeOf(item), like: id, ...VARIATIONS[how].request });
    } catch (e) {
      notify(e instanceof Error ? e.message : String(e));
    }
  };
  const me = () => (collab.provider.awareness.getLocalState()?.user as { name?: string } | undefined)?.name ?? 'Someone';
  /** Puts an uploaded image in the place of the selected one, keeping that one as a version. */
  const replaceWith = async (file: File | undefined) => {
    const item = selected.length === 1 ? selected[0] : undefined;
    if (!file || !item) return;
    try {
      const asset = await uploadImage(ws, file);
      const now = model.items().get(item.id);
      if (now) model.update({ [item.id]: replaceImage(now, { asset: asset.sha256, width: asset.width, height: asset.height }, me()) });
    } catch (e) {
      notify(e instanceof ApiError || e instanceof Error ? e.message : String(e));
    }
  };
  const restore = (id: string, index: number) => {
    const item = model.items().get(id);
    const change = item && restoreVersion(item, index, me());
    if (change) model.update({ [id]: change });
  };
  const removeSelected = () => {
    if (!liveSelection.size) return;
    model.remove(liveSelection);
    setSelection(new Set());
  };
  const duplicate = () => {
    if (!selected.length) return;
    const groups = new Map<string, string>();
    add(
      selected.map(({ id: _id, z: _z, ...rest }) => {
        void _id;
        void _z;
        const group = rest.group ? (groups.get(rest.group) ?? groups.set(rest.group, newId()).get(rest.group)) : undefined;
        return { ...rest, x: rest.x + 24, y: rest.y + 24, group };
      }),
    );
  };
  const arrange = (how: Alignment | 'hspace' | 'vspace') => {
    const moves = how === 'hspace' ? distribute(selected, 'x') : how === 'vspace' ? distribute(selected, 'y') : align(selected, how);
    model.update(moves);
  };
  const group = () => {
    if (selected.length < 2) return;
    const g = newId();
    model.update(Object.fromEntries(selected.map((i) => [i.id, { group: g }])));
  };
  const ungroup = () => model.update(Object.fromEntries(selected.map((i) => [i.id, { group: undefined }])));
  const restack = (front: boolean) => {
    if (!selected.length) return;
    const zs = [...items.values()].map((i) => i.z);
    let z = front ? Math.max(...zs) : Math.min(...zs) - selected.length;
    model.update(Object.fromEntries(selected.map((i) => [i.id, { z: ++z }])));
  };
  const nudge = (dx: number, dy: number) => model.update(Object.fromEntries(selected.map((i) => [i.id, { x: i.x + dx, y: i.y + dy }])));
  const zoomBy = (factor: number) => {
    const r = root.current!.getBoundingClientRect();
    setView((v) => zoomAt(v, v.zoom * factor, r.width / 2, r.height / 2));
  };
  const fitAll = () => {
    const r = root.current!.getBoundingClientRect();
    setView(fit(bounds(selected.length ? selected : items.values()), r.width, r.height, TOOL_INSETS));
  };
  const exportAs = async (format: 'png' | 'pdf') => {
    const list = selected.length ? selected : sorted;
    if (!list.length) return notify('The board is empty: add something to export.');
    try {
      await (format === 'png' ? exportPng : exportPdf)(ws, list, title);
    } catch (e) {
      notify((e as Error).message);
    }
  };

  // Keyboard shortcuts, while no field has the keys.
  const keys = useRef<(e: KeyboardEvent) => void>(() => {});
  const onKey = (e: KeyboardEvent) => {
    if (isTyping(e.target) || editing) return;
    const mod = e.ctrlKey || e.metaKey;
    const k = e.key.toLowerCase();
    const done = () => e.preventDefault();
    if (k === ' ') {
      spaceHeld.current = true;
      return done();
    }
    if (k === 'escape') {
      setSelection(new Set());
      setShowHelp(false);
      return;
    }
    if (k === '?') return setShowHelp((s) => !s);
    if (mod && k === 'a') return done(), setSelection(new Set(items.keys()));
    if (k === '+' || k === '=') return done(), zoomBy(1.25);
    if (k === '-') return done(), zoomBy(0.8);
    if (k === '0' && !mod) return setView((v) => zoomAt(v, 1, root.current!.clientWidth / 2, root.current!.clientHeight / 2));
    if (k === '1' && e.shiftKey) return fitAll();
    if (!editable) return;
    if (mod && k === 'z') return done(), e.shiftKey ? model.redo() : model.undo();
    if (mod && k === 'y') return done(), model.redo();
    if (mod && k === 'd') return done(), duplicate();
    if (mod && k === 'g') return done(), e.shiftKey ? ungroup() : group();
    if (k === 'delete' || k === 'backspace') return done(), removeSelected();
    if (k === 'enter' && selected.length === 1) return done(), setEditing(selected[0]!.id);
    if (k === 'n' && !mod) return done(), addNote();
    if (k === ']') return restack(true);
    if (k === '[') return restack(false);
    const step = e.shiftKey ? 10 : 1;
    const arrows: Record<string, [number, number]> = { arrowleft: [-step, 0], arrowright: [step, 0], arrowup: [0, -step], arrowdown: [0, step] };
    if (arrows[k] && selected.length) return done(), nudge(...arrows[k]);
  };
  useLayoutEffect(() => {
    keys.current = onKey;
  });
  useEffect(() => {
    const down = (e: KeyboardEvent) => keys.current(e);
    const up = (e: KeyboardEvent) => e.key === ' ' && (spaceHeld.current = false);
    window.addEventListener('keydown', down);
    window.addEventListener('keyup', up);
    return () => {
      window.removeEventListener('keydown', down);
      window.removeEventListener('keyup', up);
    };
  }, []);

  // Images pasted from the clipboard go where the view is.
  const pasted = useRef<(e: ClipboardEvent) => void>(() => {});
  const onPaste = (e: ClipboardEvent) => {
    if (!editable || isTyping(e.target)) return;
    const files = [...(e.clipboardData?.files ?? [])];
    if (files.length) {
      e.preventDefault();
      void uploadFiles(files);
    }
  };
  useLayoutEffect(() => {
    pasted.current = onPaste;
  });
  useEffect(() => {
    const f = (e: ClipboardEvent) => pasted.current(e);
    window.addEventListener('paste', f);
    return () => window.removeEventListener('paste', f);
  }, []);

  // The wheel pans; with Ctrl (a trackpad's pinch) or ⌘ it zooms about the pointer.
  useEffect(() => {
    const el = root.current!;
    const wheel = (e: WheelEvent) => {
      if (isTyping(e.target)) return;
      e.preventDefault();
      const r = el.getBoundingClientRect();
      if (e.ctrlKey || e.metaKey) {
        setView((v) => zoomAt(v, v.zoom * Math.exp(-e.deltaY * 0.01), e.clientX - r.left, e.clientY - r.top));
      } else {
        setView((v) => ({ ...v, x: v.x - e.deltaX, y: v.y - e.deltaY }));
      }
    };
    el.addEventListener('wheel', wheel, { passive: false });
    return () => el.removeEventListener('wheel', wheel);
  }, []);

  // Pointer gestures: one pending move is applied per frame.
  const frame = useRef(0);
  const last = useRef<PointerEvent | React.PointerEvent | null>(null);
  const pointerSent = useRef(0);

  const apply = () => {
    frame.current = 0;
    const e = last.current;
    const g = gesture.current;
    if (!e || !g) return;
    if (g.kind === 'pan') {
      setView({ ...g.view, x: g.view.x + e.clientX - g.sx, y: g.view.y + e.clientY - g.sy });
      return;
    }
    const p = planeAt(e.clientX, e.clientY);
    if (g.kind === 'marquee') {
      g.to = p;
      const area = between(g.from, p);
      setMarquee(area);
      const hit = sorted.filter((i) => intersects(area, i)).map((i) => i.id);
      setSelection(new Set([...g.base, ...withGroups(hit)]));
    } else if (g.kind === 'move') {
      const dx = p.x - g.from.x;
      const dy = p.y - g.from.y;
      if (!g.moved && Math.hypot(dx, dy) * viewRef.current.zoom < 3) return;
      g.moved = true;
      const moves: Record<string, ItemChange> = {};
      g.origin.forEach((r, id) => (moves[id] = { x: Math.round(r.x + dx), y: Math.round(r.y + dy) }));
      model.update(moves);
    } else if (g.kind === 'resize') {
      const box = resizeBox(g.box, g.handle, p.x - g.from.x, p.y - g.from.y, g.aspect || e.shiftKey);
      const changes: Record<string, ItemChange> = {};
      g.origin.forEach((r, id) => {
        const n = scaleInto(r, g.box, box);
        changes[id] = { x: Math.round(n.x), y: Math.round(n.y), w: Math.max(8, Math.round(n.w)), h: Math.max(8, Math.round(n.h)) };
      });
      model.update(changes);
    }
  };

  const onPointerDown = (e: React.PointerEvent<HTMLDivElement>) => {
    const target = e.target as HTMLElement;
    if (target.closest('.board-ui') || isTyping(target)) return;
    root.current!.focus({ preventScroll: true });
    if (e.button === 1 || (e.button === 0 && spaceHeld.current)) {
      gesture.current = { kind: 'pan', sx: e.clientX, sy: e.clientY, view: viewRef.current };
      setPanning(true);
    } else if (e.button !== 0) {
      return;
    } else if (target.dataset.handle && editable && selectionBox) {
      const origin = new Map(selected.map((i) => [i.id, { x: i.x, y: i.y, w: i.w, h: i.h }]));
      const aspect = selected.length > 1 || selected[0]?.type === 'image';
      gesture.current = { kind: 'resize', handle: target.dataset.handle as Handle, from: planeAt(e.clientX, e.clientY), box: selectionBox, origin, aspect, end: model.beginGesture() };
    } else {
      const id = target.closest<HTMLElement>('.board-item')?.dataset.id;
      if (id) {
        let next: Set<string>;
        if (e.shiftKey) {
          next = new Set(liveSelection);
          const members = withGroups([id]);
          const on = !next.has(id);
          members.forEach((m) => (on ? next.add(m) : next.delete(m)));
        } else {
          next = liveSelection.has(id) ? liveSelection : withGroups([id]);
        }
        setSelection(next);
        if (editing && editing !== id) setEditing(null);
        if (editable && next.has(id)) {
          const origin = new Map([...next].flatMap((s) => {
            const i = items.get(s);
            return i ? [[s, { x: i.x, y: i.y, w: i.w, h: i.h }] as const] : [];
          }));
          gesture.current = { kind: 'move', from: planeAt(e.clientX, e.clientY), origin, end: model.beginGesture(), moved: false, clicked: id };
        }
      } else {
        setEditing(null);
        const base = e.shiftKey ? new Set(liveSelection) : new Set<string>();
        if (!e.shiftKey) setSelection(base);
        const p = planeAt(e.clientX, e.clientY);
        gesture.current = { kind: 'marquee', from: p, to: p, base };
      }
    }
    root.current!.setPointerCapture(e.pointerId);
  };

  const onPointerMove = (e: React.PointerEvent<HTMLDivElement>) => {
    const now = performance.now();
    if (now - pointerSent.current > 50) {
      pointerSent.current = now;
      const p = planeAt(e.clientX, e.clientY);
      collab.provider.awareness.setLocalStateField('pointer', { x: Math.round(p.x), y: Math.round(p.y) });
    }
    if (!gesture.current) return;
    last.current = e;
    if (!frame.current) frame.current = requestAnimationFrame(apply);
  };

  const onPointerUp = (e: React.PointerEvent<HTMLDivElement>) => {
    const g = gesture.current;
    if (!g) return;
    if (frame.current) {
      cancelAnimationFrame(frame.current);
      apply();
    }
    gesture.current = null;
    last.current = null;
    if (g.kind === 'marquee') setMarquee(null);
    if (g.kind === 'pan') setPanning(false);
    if (g.kind === 'move' || g.kind === 'resize') g.end();
    // A click (no drag) on one of several selected items selects it alone.
    if (g.kind === 'move' && !g.moved && !e.shiftKey && liveSelection.size > 1 && liveSelection.has(g.clicked)) {
      setSelection(withGroups([g.clicked]));
    }
    root.current?.releasePointerCapture(e.pointerId);
  };

  const onDoubleClick = (e: React.MouseEvent) => {
    if (!editable || isTyping(e.target)) return;
    // The canvas holds the pointer while a button is down, so the event names it, not what
    // is under the pointer.
    const under = document.elementFromPoint(e.clientX, e.clientY);
    if (!under || under.closest('.board-ui, .selection-box')) return;
    const id = under.closest<HTMLElement>('.board-item')?.dataset.id;
    if (id) setEditing(id);
    else addNote(planeAt(e.clientX, e.clientY));
  };

  const onDrop = (e: React.DragEvent) => {
    e.preventDefault();
    if (!editable) return;
    const files = [...e.dataTransfer.files];
    if (files.length) void uploadFiles(files, planeAt(e.clientX, e.clientY));
  };

  const picker = useRef<HTMLInputElement>(null);
  const remoteSelections = remotes.flatMap((r) => r.selection.map((id) => ({ id, r }))).filter(({ id }) => items.has(id));
  const handleSize = 10 / view.zoom;
  const many = selected.length > 1;

  return (
    <div className="board-layout">
      <div
        ref={root}
        className={`board${panning ? ' panning' : ''}`}
        tabIndex={0}
        role="application"
        aria-label="Moodboard canvas"
        aria-roledescription="moodboard"
        onPointerDown={onPointerDown}
        onPointerMove={onPointerMove}
        onPointerUp={onPointerUp}
        onPointerCancel={onPointerUp}
        onPointerLeave={() => collab.provider.awareness.setLocalStateField('pointer', null)}
        onDoubleClick={onDoubleClick}
        onDragOver={(e) => e.preventDefault()}
        onDrop={onDrop}
        style={{ backgroundPosition: `${view.x}px ${view.y}px`, backgroundSize: `${24 * view.zoom}px ${24 * view.zoom}px` }}
      >
        <div className="board-plane" style={{ transform: `translate(${view.x}px, ${view.y}px) scale(${view.zoom})` }}>
          {sorted.map((item) => (
            <ItemView
              key={item.id}
              item={item}
              ws={ws}
              zoom={view.zoom}
              selected={liveSelection.has(item.id)}
              editing={editing === item.id}
              onChange={change}
              onDone={stopEditing}
              onRemove={editable ? removeOne : undefined}
            />
          ))}
          {uploads.map((u) => (
            <div key={u.key} className="board-upload" style={{ transform: `translate(${u.x}px, ${u.y}px)` }} role="status">
              Uploading {u.name}…
            </div>
          ))}
          {remoteSelections.map(({ id, r }) => {
            const i = items.get(id)!;
            return (
              <div
                key={`${r.clientId}:${id}`}
                className="remote-selection"
                data-person={r.name}
                style={{ transform: `translate(${i.x}px, ${i.y}px)`, width: i.w, height: i.h, borderColor: r.color, borderWidth: 2 / view.zoom }}
              />
            );
          })}
          {selectionBox && (
            <div
              className="selection-box"
              style={{ transform: `translate(${selectionBox.x}px, ${selectionBox.y}px)`, width: selectionBox.w, height: selectionBox.h, borderWidth: 1.5 / view.zoom }}
            >
              {editable &&
                !editing &&
                (['nw', 'ne', 'sw', 'se'] as const).map((h) => (
                  <span key={h} className={`handle ${h}`} data-handle={h} style={{ width: handleSize, height: handleSize, borderWidth: 1.5 / view.zoom }} aria-hidden />
                ))}
            </div>
          )}
        </div>
        {remotes.map((r) => {
          if (!r.pointer) return null;
          const s = toScreen(view, r.pointer.x, r.pointer.y);
          return (
            <div key={r.clientId} className="remote-pointer" style={{ transform: `translate(${s.x}px, ${s.y}px)` }} aria-label={`${r.name}'s pointer`}>
              <svg width="16" height="20" viewBox="0 0 16 20" aria-hidden>
                <path d="M1 1 L1 16 L5 12 L8 19 L11 18 L8 11 L14 11 Z" fill={r.color} stroke="#fff" strokeWidth="1.2" />
              </svg>
              <span style={{ background: r.color }}>{r.name}</span>
            </div>
          );
        })}
        {marquee && (
          <div
            className="marquee"
            style={{
              transform: `translate(${toScreen(view, marquee.x, marquee.y).x}px, ${toScreen(view, marquee.x, marquee.y).y}px)`,
              width: marquee.w * view.zoom,
              height: marquee.h * view.zoom,
            }}
          />
        )}
        {items.size === 0 && save !== 'loading' && (
          <div className="board-empty muted">
            {editable ? 'Drop images here, paste them, or add a note with N. Double-click anywhere to write.' : 'This board is empty.'}
          </div>
        )}

        <div className="board-ui board-toolbar" role="toolbar" aria-label="Board tools">
          {editable && (
            <>
              <button className="board-tool" onClick={() => picker.current?.click()} title="Add images (or drop or paste them)">
                Image
              </button>
              <input
                ref={picker}
                type="file"
                accept={IMAGE_TYPES.join(',')}
                multiple
                hidden
                aria-label="Images to add"
                onChange={(e) => {
                  void uploadFiles([...(e.target.files ?? [])]);
                  e.target.value = '';
                }}
              />
              <button className="board-tool" onClick={() => addNote()} title="Add a note (N)">
                Note
              </button>
              <button className="board-tool" onClick={() => addSwatch()} title="Add a colour swatch">
                Swatch
              </button>
              <button className="board-tool" onClick={() => setLinkAt(centre())} title="Add a link">
                Link
              </button>
              <span className="board-sep" />
              <button className="board-tool" onClick={() => model.undo()} title="Undo your last change (Ctrl+Z)" aria-label="Undo">
                ↶
              </button>
              <button className="board-tool" onClick={() => model.redo()} title="Redo (Ctrl+Shift+Z)" aria-label="Redo">
                ↷
              </button>
            </>
          )}
          <span className="board-sep" />
          <button className="board-tool" onClick={() => void exportAs('png')} title="Export the board (or the selection) as PNG">
            PNG
          </button>
          <button className="board-tool" onClick={() => void exportAs('pdf')} title="Export the board (or the selection) as PDF">
            PDF
          </button>
          <button className="board-tool" onClick={() => setShowHelp((s) => !s)} title="Keyboard shortcuts (?)" aria-label="Keyboard shortcuts">
            ?
          </button>
        </div>

        {editable && selected.length > 0 && !editing && (
          <div className="board-ui selection-bar" role="toolbar" aria-label="Selection">
            <span className="muted small-text">{selected.length === 1 ? '1 item' : `${selected.length} items`}</span>
            {many && (
              <>
                <button className="board-tool" aria-expanded={aligning} onClick={() => setAligning((a) => !a)} title="Align and space">
                  Align ▾
                </button>
                {aligning && (
                  <div className="align-menu" role="group" aria-label="Align">
                    {(
                      [
                        ['left', '⇤', 'Align left'],
                        ['center', '↔', 'Align centres'],
                        ['right', '⇥', 'Align right'],
                        ['top', '⤒', 'Align tops'],
                        ['middle', '↕', 'Align middles'],
                        ['bottom', '⤓', 'Align bottoms'],
                        ['hspace', '⋯', 'Space evenly across'],
                        ['vspace', '⋮', 'Space evenly down'],
                      ] as const
                    ).map(([how, icon, label]) => (
                      <button
                        key={how}
                        className="board-tool"
                        aria-label={label}
                        title={label}
                        disabled={(how === 'hspace' || how === 'vspace') && selected.length < 3}
                        onClick={() => arrange(how)}
                      >
                        {icon}
                      </button>
                    ))}
                  </div>
                )}
                <button className="board-tool" onClick={group} title="Group (Ctrl+G)">
                  Group
                </button>
              </>
            )}
            {selected.some((i) => i.group) && (
              <button className="board-tool" onClick={ungroup} title="Ungroup (Ctrl+Shift+G)">
                Ungroup
              </button>
            )}
            <button className="board-tool" onClick={() => restack(true)} title="Bring to front (])">
              Front
            </button>
            <button className="board-tool" onClick={() => restack(false)} title="Send to back ([)">
              Back
            </button>
            {selected.length === 1 && (
              <button className="board-tool" onClick={() => setEditing(selected[0]!.id)} title="Edit (Enter)">
                {selected[0]!.type === 'image' ? 'Caption' : 'Edit'}
              </button>
            )}
            {selected.length === 1 && variations(selected[0]!).length > 0 && (
              <>
                <button
                  className="board-tool"
                  aria-expanded={varyingFor === selection}
                  onClick={() => setVaryingFor((v) => (v === selection ? null : selection))}
                  title="Paint four more like this image"
                >
                  More like this ▾
                </button>
                {varyingFor === selection && (
                  <div className="variations-menu" role="menu" aria-label="More like this">
                    {variations(selected[0]!).map((how) => (
                      <button key={how} role="menuitem" className="board-tool" onClick={() => void moreLikeThis(selected[0]!.id, how)}>
                        <strong>{VARIATIONS[how].label}</strong>
                        <span className="muted small-text">{VARIATIONS[how].hint}</span>
                      </button>
                    ))}
                  </div>
                )}
              </>
            )}
            {selected.length === 1 && selected[0]!.type === 'image' && selected[0]!.asset && (
              <>
                <button className="board-tool" onClick={() => replacePicker.current?.click()} title="Put another image in this one's place (it is kept as a version)">
                  Replace
                </button>
                <input
                  ref={replacePicker}
                  type="file"
                  accept={IMAGE_TYPES.join(',')}
                  hidden
                  aria-label="Image to put in its place"
                  onChange={(e) => {
                    void replaceWith(e.target.files?.[0]);
                    e.target.value = '';
                  }}
                />
              </>
            )}
            {selected.length === 1 && (selected[0]!.versions?.length ?? 0) > 0 && (
              <button
                className="board-tool"
                aria-expanded={versionsOf === selection}
                onClick={() => setVersionsOf((v) => (v === selection ? null : selection))}
                title="The images it showed before"
              >
                Versions ({selected[0]!.versions!.length})
              </button>
            )}
            {selected.length === 1 && typeof selected[0]!.source?.prompt === 'string' && (
              <button className="board-tool" aria-expanded={aboutOpen} onClick={() => setAboutOpen((o) => !o)} title="How this image was made">
                About
              </button>
            )}
            <button className="board-tool danger" onClick={removeSelected} title="Delete (Delete)">
              Delete
            </button>
          </div>
        )}

        {versionsOf === selection && selected.length === 1 && (
          <VersionsPanel ws={ws} item={selected[0]!} onRestore={(i) => restore(selected[0]!.id, i)} onClose={() => setVersionsOf(null)} />
        )}

        {aboutOpen && selected.length === 1 && selected[0]!.source && (
          <SourceCard source={selected[0]!.source} onClose={() => setAboutOpen(false)} />
        )}

        <div className="board-ui board-zoom" role="group" aria-label="Zoom">
          <button className="board-tool" onClick={() => zoomBy(0.8)} aria-label="Zoom out">
            −
          </button>
          <button className="board-tool zoom-level" onClick={fitAll} title="Fit to screen (Shift+1)">
            {Math.round(view.zoom * 100)}%
          </button>
          <button className="board-tool" onClick={() => zoomBy(1.25)} aria-label="Zoom in">
            +
          </button>
        </div>

        <div className="board-ui board-status">
          <Presence collab={collab} />
          <SaveBadge collab={collab} />
          <button className="board-tool" onClick={() => setBriefOpen((o) => !o)} aria-expanded={briefOpen}>
            Brief
          </button>
        </div>

        {linkAt && (
          <form
            className="board-ui board-popover"
            aria-label="Add a link"
            onSubmit={(e) => {
              e.preventDefault();
              const url = String(new FormData(e.currentTarget).get('url') ?? '').trim();
              const ok = /^https?:\/\/\S+\.\S+/.test(url);
              if (!ok) return notify('A link starts with http:// or https:// and names a site, e.g. https://example.com/chairs.');
              add([{ type: 'link', ...placed(linkAt, 260, 100), url }]);
              setLinkAt(null);
            }}
          >
            <label>
              Link address
              <input name="url" type="url" placeholder="https://" autoFocus required />
            </label>
            <div className="row">
              <button type="submit">Add link</button>
              <button type="button" className="secondary" onClick={() => setLinkAt(null)}>
                Cancel
              </button>
            </div>
          </form>
        )}

        {showHelp && <Shortcuts onClose={() => setShowHelp(false)} />}

        {ended && (
          <p className="board-ui board-ended error" role="alert">
            {ended}
          </p>
        )}
        {!canEdit && (
          <p className="board-ui board-readonly muted small-text" role="note">
            View only: you see changes as they happen. Ask an admin of this workspace to make you an editor.
          </p>
        )}
        <div className="board-ui board-notices" aria-live="assertive">
          {notices.map((n) => (
            <p key={n.key} className="board-notice" role="alert">
              {n.text}
              <button className="icon" aria-label="Dismiss" onClick={() => setNotices((all) => all.filter((x) => x.key !== n.key))}>
                ×
              </button>
            </p>
          ))}
        </div>
      </div>
      {briefOpen && (
        <BriefPanel
          ws={ws}
          model={model}
          canEdit={editable}
          selectedImage={selected.length === 1 && selected[0]!.type === 'image' ? selected[0]!.asset : undefined}
          onGenerate={startGeneration}
          onClose={() => setBriefOpen(false)}
        />
      )}
    </div>
  );
}

const SHORTCUTS: [string, string][] = [
  ['Drag empty space', 'Select items in a rectangle'],
  ['Shift+click', 'Add to or take from the selection'],
  ['Space+drag, middle button, wheel', 'Move around'],
  ['Ctrl+wheel, pinch, + and −', 'Zoom'],
  ['Shift+1 / 0', 'Fit everything / 100 %'],
  ['N, double-click', 'New note'],
  ['Enter', 'Edit the selected item'],
  ['Arrows (Shift: ×10)', 'Nudge'],
  ['Ctrl+D', 'Duplicate'],
  ['Ctrl+G / Ctrl+Shift+G', 'Group / ungroup'],
  ['] / [', 'Bring to front / send to back'],
  ['Delete', 'Delete'],
  ['Ctrl+Z / Ctrl+Shift+Z', 'Undo / redo your own changes'],
  ['Ctrl+A, Escape', 'Select all, select none'],
];

function Shortcuts({ onClose }: { onClose: () => void }) {
  return (
    <div className="board-ui board-help" role="dialog" aria-label="Keyboard shortcuts">
      <div className="panel-head">
        <h2>Keyboard shortcuts</h2>
        <button className="icon" aria-label="Close" onClick={onClose}>
          ×
        </button>
      </div>
      <dl>
        {SHORTCUTS.map(([k, what]) => (
          <div key={k}>
            <dt>
              <kbd>{k}</kbd>
            </dt>
            <dd>{what}</dd>
          </div>
        ))}
      </dl>
    </div>
  );
}
