import { describe, expect, it } from 'vitest';
import * as Y from 'yjs';
import { apply, changes, command, explain, fieldOf, parseLines, read, setField, toLines, type AjvError, type BuildSchema } from './model';

const schema: BuildSchema = {
  required: ['BOARD', 'BRANCH', 'RELEASE'],
  properties: {
    BOARD: { title: 'Board', oneOf: [{ const: 'rock-5b', title: 'Rock 5B' }] },
    BRANCH: { title: 'Kernel branch', enum: ['current', 'edge', 'legacy', 'vendor'] },
    RELEASE: { title: 'Release', oneOf: [{ const: 'noble' }] },
    BUILD_MINIMAL: { title: 'Minimal image', enum: ['yes', 'no'], default: 'no' },
    DESKTOP_ENVIRONMENT: { title: 'Desktop environment', enum: ['gnome', 'xfce'] },
    FIXED_IMAGE_SIZE: { title: 'Image size (MiB)', type: 'integer' },
  },
};

describe('the configuration map', () => {
  it('writes one setting at a time, and only what changed', () => {
    const doc = new Y.Doc();
    const updates: Uint8Array[] = [];
    doc.on('update', (u: Uint8Array) => updates.push(u));
    setField(doc, 'BOARD', 'rock-5b', null);
    setField(doc, 'BOARD', 'rock-5b', null);
    expect(updates).toHaveLength(1);
    apply(doc, { BOARD: 'rock-5b', RELEASE: 'noble' }, null);
    expect(read(doc.getMap('content'))).toEqual({ BOARD: 'rock-5b', RELEASE: 'noble' });
    setField(doc, 'RELEASE', '', null);
    expect(read(doc.getMap('content'))).toEqual({ BOARD: 'rock-5b' });
  });

  it('keeps both of two settings changed at once in two browsers', () => {
    const [ada, grace] = [new Y.Doc(), new Y.Doc()];
    apply(ada, { BOARD: 'rock-5b', RELEASE: 'jammy' }, null);
    Y.applyUpdate(grace, Y.encodeStateAsUpdate(ada));
    setField(ada, 'BOARD', 'orangepi5', null);
    setField(grace, 'RELEASE', 'noble', null);
    Y.applyUpdate(grace, Y.encodeStateAsUpdate(ada));
    Y.applyUpdate(ada, Y.encodeStateAsUpdate(grace));
    expect(read(ada.getMap('content'))).toEqual({ BOARD: 'orangepi5', RELEASE: 'noble' });
    expect(read(grace.getMap('content'))).toEqual(read(ada.getMap('content')));
  });

  it('says what turns one configuration into another', () => {
    expect(changes({ A: '1', B: '2' }, { A: '1', B: '3', C: 'x' })).toEqual({ set: { B: '3', C: 'x' }, remove: [] });
    expect(changes({ A: '1', B: '2' }, { A: '1' })).toEqual({ set: {}, remove: ['B'] });
  });

  it('names the setting of a form field', () => {
    expect(fieldOf('root_FIXED_IMAGE_SIZE')).toBe('FIXED_IMAGE_SIZE');
    expect(fieldOf('root')).toBeUndefined();
    expect(fieldOf(undefined)).toBeUndefined();
  });
});

describe('the expert view', () => {
  it('shows KEY=value lines in the schema order, then the rest by name', () => {
    const config = { ZRAM: 'yes', RELEASE: 'noble', BOARD: 'rock-5b', FIXED_IMAGE_SIZE: 7000, EXPERT: true };
    expect(toLines(config, schema)).toBe('BOARD=rock-5b\nRELEASE=noble\nFIXED_IMAGE_SIZE=7000\nEXPERT=yes\nZRAM=yes');
    expect(command({ BOARD: 'rock-5b', BRANCH: 'edge' }, schema)).toBe('./compile.sh build BOARD=rock-5b BRANCH=edge');
  });

  it('reads lines back, numbers where the schema says so, and names the bad line', () => {
    const text = '# my build\nBOARD=rock-5b\n\nRELEASE="noble"\nFIXED_IMAGE_SIZE=7000\nlower=1\nno equals\nBOARD=rock-5c';
    const { config, errors } = parseLines(text, schema);
    expect(config).toEqual({ BOARD: 'rock-5c', RELEASE: 'noble', FIXED_IMAGE_SIZE: 7000 });
    expect(errors.map((e) => e.line)).toEqual([6, 7, 8]);
    expect(errors[0]!.message).toContain('not a setting name');
    expect(errors[2]!.message).toContain('set twice');
  });
});

describe('messages', () => {
  it('says what AJV found the way the server does', () => {
    const config = { BOARD: 'rock-5b', BRANCH: 'legacy', BUILD_DESKTOP: 'yes' };
    const errors = explain<AjvError>(
      [
        { name: 'enum', property: '.BRANCH', params: { allowedValues: ['current', 'edge', 'vendor'] } },
        { name: 'if', property: '', params: { failingKeyword: 'then' } },
        { name: 'required', property: 'DESKTOP_ENVIRONMENT', params: { missingProperty: 'DESKTOP_ENVIRONMENT' } },
        { name: 'const', property: '.BOARD', params: { allowedValue: 'x' } },
        { name: 'oneOf', property: '.BOARD', params: {} },
      ],
      { ...config, BOARD: 'nope' },
      schema,
    );
    expect(errors.map((e) => [e.property, e.message])).toEqual([
      ['.BRANCH', "nope does not build the 'legacy' kernel branch; it builds current, edge or vendor"],
      ['.DESKTOP_ENVIRONMENT', 'a desktop image names its desktop environment'],
      ['.BOARD', "'nope' is not a board of this Armbian configuration"],
    ]);
  });
});
