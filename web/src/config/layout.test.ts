import { describe, expect, it } from 'vitest';
import { LAYOUT_VERSION, PANELS, defaultLayout, panelsIn, restore } from './layout';

describe('the configuration’s panels', () => {
  it('start with every panel once', () => {
    expect(panelsIn(defaultLayout().layout).sort()).toEqual(Object.keys(PANELS).sort());
  });

  it('come back as a person left them, if that layout still holds every panel', () => {
    const mine = defaultLayout();
    // Ada moved Files beside Builds.
    const main = mine.layout.children![0] as { children: { component: string }[] };
    const files = main.children.splice(1, 1)[0]!;
    const side = (mine.layout.children![1] as { children: { children: unknown[] }[] }).children[1]!;
    side.children.push(files);
    const kept = restore({ v: LAYOUT_VERSION, model: mine });
    expect(panelsIn(kept.layout).sort()).toEqual(Object.keys(PANELS).sort());
    expect(JSON.stringify(kept.layout)).toBe(JSON.stringify(mine.layout));
    // Quire's own settings win over what was kept.
    expect(restore({ v: LAYOUT_VERSION, model: { ...mine, global: { tabEnableClose: true } } }).global?.tabEnableClose).toBe(false);
  });

  it('start over from a layout of another version, or one missing a panel', () => {
    const fresh = JSON.stringify(defaultLayout());
    expect(JSON.stringify(restore(null))).toBe(fresh);
    expect(JSON.stringify(restore({ v: LAYOUT_VERSION + 1, model: defaultLayout() }))).toBe(fresh);
    const missing = defaultLayout();
    (missing.layout.children![0] as { children: unknown[] }).children.pop();
    expect(JSON.stringify(restore({ v: LAYOUT_VERSION, model: missing }))).toBe(fresh);
    expect(JSON.stringify(restore({ v: LAYOUT_VERSION, model: { layout: { type: 'row' } } }))).toBe(fresh);
  });
});
