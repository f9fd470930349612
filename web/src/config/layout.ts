// The board configuration's screen as dockable panels (flexlayout-react): which panels there
// are, how they start, and whether a layout a person kept still holds them all.
import type { IJsonModel, IJsonRowNode, IJsonTabSetNode } from 'flexlayout-react';

/** The panels, by id (the id is also the component the factory draws). */
export const PANELS = {
  settings: 'Settings',
  check: 'Check',
  files: 'Files',
  builds: 'Builds',
  build: 'Build log',
  artifacts: 'Artifacts',
} as const;
export type PanelId = keyof typeof PANELS;

/** Where a person's layout is kept (`/api/v1/me/preferences/{key}`), and its shape's version:
 * a kept layout of another version is set aside for the default. */
export const PREFERENCE = 'config-layout';
export const LAYOUT_VERSION = 1;

const tab = (id: PanelId) => ({ type: 'tab', id, name: PANELS[id], component: id });

export function defaultLayout(): IJsonModel {
  return {
    global: {
      tabEnableClose: false,
      tabEnableRename: false,
      tabEnablePopout: false,
      tabSetMinWidth: 220,
      tabSetMinHeight: 120,
    },
    borders: [],
    layout: {
      type: 'row',
      children: [
        { type: 'tabset', id: 'main', weight: 62, children: [tab('settings'), tab('files'), tab('build')] },
        {
          type: 'row',
          weight: 38,
          children: [
            { type: 'tabset', id: 'side', weight: 55, children: [tab('check'), tab('artifacts')] },
            { type: 'tabset', id: 'history', weight: 45, children: [tab('builds')] },
          ],
        },
      ],
    },
  };
}

/** The panel ids a layout holds, wherever they were docked. */
export function panelsIn(node: IJsonRowNode | IJsonTabSetNode | { children?: unknown[]; component?: string }): string[] {
  const own = 'component' in node && typeof node.component === 'string' ? [node.component] : [];
  const children = (node.children ?? []) as (IJsonRowNode | IJsonTabSetNode)[];
  return own.concat(children.flatMap((c) => panelsIn(c)));
}

/** A kept layout if it is of this version and holds every panel once; the default otherwise. */
export function restore(kept: unknown): IJsonModel {
  const k = kept as { v?: number; model?: IJsonModel } | null;
  if (!k || k.v !== LAYOUT_VERSION || !k.model?.layout) return defaultLayout();
  const found = [...panelsIn(k.model.layout), ...(k.model.borders ?? []).flatMap((b) => panelsIn(b as never))].sort();
  const wanted = Object.keys(PANELS).sort();
  if (found.length !== wanted.length || found.some((id, i) => id !== wanted[i])) return defaultLayout();
  // Settings that are Quire's, not the person's, come from the default.
  return { ...k.model, global: { ...k.model.global, ...defaultLayout().global } };
}
