import { describe, expect, it } from 'vitest';
import * as Y from 'yjs';
import { languageOf, pathProblem, readFiles, tree } from './files';
import { CONTENT } from './model';

const entry = (sha: string, mode = '644') => ({ sha256: sha.repeat(64), size: 3, mode, text: true, updated_by: 'usr_a', updated_by_name: 'Ada', updated_at: 1 });

describe('a configuration’s files', () => {
  it('are read from the shared document, nested maps or plain values, in path order', () => {
    const doc = new Y.Doc();
    const content = doc.getMap(CONTENT);
    const files = new Y.Map();
    content.set('BOARD', 'rock-5b');
    content.set('files', files);
    const motd = new Y.Map(Object.entries(entry('b')));
    files.set('overlay/etc/motd', motd);
    files.set('customize-image.sh', entry('a', '755'));
    files.set('broken', { size: 1 });
    const read = readFiles(doc);
    expect(read.map((f) => f.path)).toEqual(['customize-image.sh', 'overlay/etc/motd']);
    expect(read[0]).toMatchObject({ mode: '755', text: true, updated_by_name: 'Ada', size: 3 });
    expect(readFiles(new Y.Doc())).toEqual([]);
  });

  it('take the paths the server takes', () => {
    for (const ok of ['customize-image.sh', 'overlay/etc/motd', 'overlay/root/.bashrc', 'linux-rockchip64-current.config', 'a/b+c@d=e,f~g']) {
      expect(pathProblem(ok), ok).toBeNull();
    }
    expect(pathProblem('')).toMatch(/path/);
    expect(pathProblem('/etc/motd')).toMatch(/leading \//);
    expect(pathProblem('overlay//motd')).toMatch(/empty/);
    expect(pathProblem('overlay/')).toMatch(/empty/);
    expect(pathProblem('../compile.sh')).toMatch(/\.\./);
    expect(pathProblem('my file.sh')).toMatch(/a space/);
    expect(pathProblem('.quire-laid.json')).toMatch(/Quire/);
    expect(pathProblem('a/'.repeat(17) + 'f')).toMatch(/deep/);
    expect(pathProblem('a'.repeat(241))).toMatch(/240/);
  });

  it('are drawn as folders, folders first', () => {
    const files = ['overlay/etc/motd', 'customize-image.sh', 'overlay/etc/issue', 'overlay/root/.bashrc', 'a.config'].map((path) => ({
      ...entry('a'),
      path,
      mode: '644' as const,
    }));
    const root = tree(files);
    expect(root.files.map((f) => f.path)).toEqual(['customize-image.sh', 'a.config']);
    expect(root.folders.map((d) => d.path)).toEqual(['overlay']);
    expect(root.folders[0]!.folders.map((d) => d.path)).toEqual(['overlay/etc', 'overlay/root']);
    expect(root.folders[0]!.folders[0]!.files.map((f) => f.path)).toEqual(['overlay/etc/motd', 'overlay/etc/issue']);
  });

  it('are edited in their language', () => {
    expect(languageOf('customize-image.sh', '')).toBe('shell');
    expect(languageOf('overlay/usr/bin/hello', '#!/bin/bash\necho')).toBe('shell');
    expect(languageOf('linux-rockchip64-current.config', 'CONFIG_X=y')).toBe('properties');
    expect(languageOf('lib.config', '')).toBe('properties');
    expect(languageOf('overlay/etc/motd', 'Welcome')).toBe('plain');
  });
});
