// The configuration's files (Armbian's userpatches/): a tree that changes as anyone adds,
// renames or removes one (it is read from the shared document), uploads by button or by
// dropping files, new files from Armbian's starting points, a text file edited in place and
// saved over the version it was opened at (someone who saved in between is never
// overwritten), rename, executable or not, download, remove, and every version of a file.
import { Suspense, lazy, useMemo, useRef, useState, useSyncExternalStore } from 'react';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import type * as Y from 'yjs';
import { api, ApiError, unwrap } from '../api/client';
import { ErrorText } from '../components/Problem';
import { ago } from '../screens/Documents';
import { size } from './builds';
import { STARTERS, languageOf, pathProblem, readFiles, tree, type FileEntry, type Folder } from './files';
import { CONTENT } from './model';

const CodeEditor = lazy(() => import('./CodeEditor'));

interface Props {
  docId: string;
  doc: Y.Doc;
  canEdit: boolean;
}

/** The files as the shared document holds them, re-read on every change to them. */
function useFiles(doc: Y.Doc): FileEntry[] {
  const cache = useRef<FileEntry[] | null>(null);
  return useSyncExternalStore(
    (notify) => {
      const map = doc.getMap(CONTENT);
      const f = () => {
        cache.current = null;
        notify();
      };
      map.observeDeep(f);
      return () => map.unobserveDeep(f);
    },
    () => (cache.current ??= readFiles(doc)),
  );
}

const fileUrl = (docId: string, path: string, sha?: string) =>
  `/api/v1/documents/${docId}/files/${encodeURIComponent(path)}${sha ? `?sha256=${sha}` : ''}`;

/** Writes a file's bytes; `expect` is the version it replaces (`null`: a new file). */
async function writeFile(docId: string, path: string, body: Blob | string, expect: string | null, mode?: '644' | '755') {
  return unwrap(
    api.PUT('/api/v1/documents/{id}/files/{path}', {
      params: { path: { id: docId, path }, query: mode ? { mode } : {} },
      body: body as unknown as number[],
      bodySerializer: (b: unknown) => b as BodyInit,
      headers: { 'Content-Type': 'application/octet-stream', ...(expect ? { 'If-Match': `"${expect}"` } : { 'If-None-Match': '*' }) },
    }),
  );
}

/** A version's text, read by its hash (the same bytes never change). */
function useText(docId: string, file: FileEntry | undefined, sha: string | undefined) {
  return useQuery({
    queryKey: ['config-file', docId, sha],
    enabled: Boolean(file?.text && sha),
    staleTime: Infinity,
    queryFn: () =>
      unwrap(
        api.GET('/api/v1/documents/{id}/files/{path}', {
          params: { path: { id: docId, path: file!.path }, query: { sha256: sha! } },
          parseAs: 'text',
        }),
      ) as Promise<string>,
  });
}

export function FilesView({ docId, doc, canEdit }: Props) {
  const files = useFiles(doc);
  const [open, setOpen] = useState<string | undefined>();
  const [folder, setFolder] = useState('');
  const [adding, setAdding] = useState(false);
  const [dropping, setDropping] = useState(false);
  const [uploadError, setUploadError] = useState<Error | null>(null);
  const picker = useRef<HTMLInputElement>(null);
  const root = useMemo(() => tree(files), [files]);
  const opened = files.find((f) => f.path === open);
  const total = files.reduce((n, f) => n + f.size, 0);

  const upload = useMutation({
    mutationFn: async (chosen: File[]) => {
      const problems: string[] = [];
      let last: string | undefined;
      for (const f of chosen) {
        const name = f.name.replace(/\s+/g, '-');
        const path = folder ? `${folder}/${name}` : name;
        const problem = pathProblem(path);
        if (problem) {
          problems.push(`${f.name}: ${problem}`);
          continue;
        }
        try {
          await writeFile(docId, path, f, null);
          last = path;
        } catch (e) {
          problems.push(
            e instanceof ApiError && e.status === 409
              ? `There is already a file ${path}: open it and choose Replace to upload a new version.`
              : `${f.name}: ${e instanceof Error ? e.message : String(e)}`,
          );
        }
      }
      if (last) setOpen(last);
      if (problems.length) throw new Error(problems.join(' '));
    },
    onMutate: () => setUploadError(null),
    onError: (e) => setUploadError(e as Error),
  });

  return (
    <div
      className={`files${dropping ? ' dropping' : ''}`}
      onDragOver={(e) => {
        if (!canEdit || !e.dataTransfer.types.includes('Files')) return;
        e.preventDefault();
        setDropping(true);
      }}
      onDragLeave={() => setDropping(false)}
      onDrop={(e) => {
        if (!canEdit) return;
        e.preventDefault();
        setDropping(false);
        upload.mutate([...e.dataTransfer.files]);
      }}
    >
      <div className="files-list" aria-label="Files">
        <div className="files-bar">
          <strong>userpatches/</strong>
          <span className="muted small-text">
            {files.length} file{files.length === 1 ? '' : 's'} · {size(total)}
          </span>
          <span className="grow" />
          {canEdit && (
            <>
              <button className="small secondary" onClick={() => setAdding((a) => !a)} aria-expanded={adding}>
                New file
              </button>
              <button className="small secondary" onClick={() => picker.current?.click()} disabled={upload.isPending}>
                {upload.isPending ? 'Uploading…' : 'Upload'}
              </button>
              <input
                ref={picker}
                type="file"
                multiple
                hidden
                data-testid="upload"
                onChange={(e) => {
                  upload.mutate([...(e.target.files ?? [])]);
                  e.target.value = '';
                }}
              />
            </>
          )}
        </div>
        {adding && (
          <NewFile
            docId={docId}
            folder={folder}
            onMade={(path) => {
              setAdding(false);
              setOpen(path);
            }}
            onCancel={() => setAdding(false)}
          />
        )}
        <ErrorText error={uploadError} />
        {canEdit && (
          <p className="muted small-text files-target">
            Uploads go into <code>userpatches/{folder ? `${folder}/` : ''}</code>
            {folder && (
              <button className="link small" onClick={() => setFolder('')}>
                (top)
              </button>
            )}
            ; drop files here too.
          </p>
        )}
        {files.length === 0 ? (
          <div className="files-empty muted">
            <p>No files yet.</p>
            <p className="small">
              Armbian runs <code>customize-image.sh</code> inside the image before closing it; files under{' '}
              <code>overlay/</code> are there for it to copy in; <code>linux-&lt;family&gt;-&lt;branch&gt;.config</code> is the
              kernel configuration it builds with.
            </p>
          </div>
        ) : (
          <Tree folder={root} open={open} current={folder} onOpen={setOpen} onFolder={setFolder} />
        )}
      </div>
      <div className="files-detail">
        {opened ? (
          <OpenFile key={opened.path} docId={docId} file={opened} canEdit={canEdit} onMoved={setOpen} onGone={() => setOpen(undefined)} />
        ) : open ? (
          <p className="muted">{open} was removed or renamed.</p>
        ) : (
          <p className="muted files-hint">Open a file to read or change it.</p>
        )}
      </div>
    </div>
  );
}

function Tree({
  folder,
  open,
  current,
  onOpen,
  onFolder,
}: {
  folder: Folder;
  open?: string;
  current: string;
  onOpen: (path: string) => void;
  onFolder: (path: string) => void;
}) {
  return (
    <ul className="files-tree" role={folder.path ? 'group' : 'tree'} aria-label={folder.path ? undefined : 'userpatches'}>
      {folder.folders.map((d) => (
        <li key={d.path} role="treeitem" aria-expanded>
          <button className={`files-folder${d.path === current ? ' current' : ''}`} onClick={() => onFolder(d.path)} title="Upload into this folder">
            {d.name}/
          </button>
          <Tree folder={d} open={open} current={current} onOpen={onOpen} onFolder={onFolder} />
        </li>
      ))}
      {folder.files.map((f) => (
        <li key={f.path} role="treeitem" aria-selected={f.path === open}>
          <button className={`files-file${f.path === open ? ' active' : ''}`} onClick={() => onOpen(f.path)}>
            <span className="files-name">{f.path.split('/').pop()}</span>
            {f.mode === '755' && <span className="files-exec" title="Executable">x</span>}
            <span className="muted small-text">{size(f.size)}</span>
          </button>
        </li>
      ))}
    </ul>
  );
}

function NewFile({ docId, folder, onMade, onCancel }: { docId: string; folder: string; onMade: (p: string) => void; onCancel: () => void }) {
  const [path, setPath] = useState(folder ? `${folder}/` : '');
  const problem = path ? pathProblem(path) : null;
  const make = useMutation({
    mutationFn: async () => {
      const starter = STARTERS.find((s) => s.path === path);
      await writeFile(docId, path, starter?.text ?? '', null);
      return path;
    },
    onSuccess: onMade,
  });
  return (
    <form
      className="files-new"
      onSubmit={(e) => {
        e.preventDefault();
        if (!problem && path) make.mutate();
      }}
    >
      <label htmlFor="new-file-path">Path inside userpatches/</label>
      <div className="row">
        <input
          id="new-file-path"
          list="file-starters"
          value={path}
          autoFocus
          spellCheck={false}
          placeholder="customize-image.sh"
          onChange={(e) => setPath(e.target.value.trim())}
          aria-invalid={Boolean(problem)}
        />
        <button type="submit" className="small" disabled={!path || Boolean(problem) || make.isPending}>
          Create
        </button>
        <button type="button" className="small secondary" onClick={onCancel}>
          Cancel
        </button>
      </div>
      <datalist id="file-starters">
        {STARTERS.map((s) => (
          <option key={s.path} value={s.path}>
            {s.title}
          </option>
        ))}
      </datalist>
      {problem && <p className="error small-text">{problem}</p>}
      <ErrorText error={make.error} />
    </form>
  );
}

function OpenFile({
  docId,
  file,
  canEdit,
  onMoved,
  onGone,
}: {
  docId: string;
  file: FileEntry;
  canEdit: boolean;
  onMoved: (path: string) => void;
  onGone: () => void;
}) {
  const client = useQueryClient();
  // The version this person opened; another person's save shows as news, not as a swap.
  const [base, setBase] = useState(file.sha256);
  const text = useText(docId, file, base);
  const [draft, setDraft] = useState<string | null>(null);
  const [renaming, setRenaming] = useState<string | null>(null);
  const [showVersions, setShowVersions] = useState(false);
  const [viewing, setViewing] = useState<{ sha: string; version: string } | null>(null);
  const replacePicker = useRef<HTMLInputElement>(null);
  const dirty = draft !== null && draft !== text.data;
  const newer = file.sha256 !== base;
  // Someone else's save is taken in at once while nothing here is unsaved.
  if (newer && !dirty) {
    setBase(file.sha256);
    setDraft(null);
  }

  const save = useMutation({
    mutationFn: (over: string) => writeFile(docId, file.path, draft ?? '', over),
    onSuccess: (saved) => {
      client.setQueryData(['config-file', docId, saved.sha256], draft ?? '');
      setBase(saved.sha256);
      setDraft(null);
    },
  });
  const change = useMutation({
    mutationFn: (body: { path?: string; mode?: '644' | '755' }) =>
      unwrap(
        api.PATCH('/api/v1/documents/{id}/files/{path}', {
          params: { path: { id: docId, path: file.path } },
          body,
          headers: { 'If-Match': `"${file.sha256}"` },
        }),
      ),
    onSuccess: (moved) => {
      setRenaming(null);
      if (moved.path !== file.path) onMoved(moved.path);
    },
  });
  const remove = useMutation({
    mutationFn: () =>
      unwrap(
        api.DELETE('/api/v1/documents/{id}/files/{path}', {
          params: { path: { id: docId, path: file.path } },
          headers: { 'If-Match': `"${file.sha256}"` },
        }),
      ),
    onSuccess: onGone,
  });
  const replace = useMutation({
    mutationFn: (f: File) => writeFile(docId, file.path, f, file.sha256),
    onSuccess: (saved) => setBase(saved.sha256),
  });
  const conflict = save.error instanceof ApiError && save.error.status === 409;
  const who = file.updated_by_name || 'someone';
  const renameProblem = renaming !== null && renaming !== file.path ? pathProblem(renaming) : null;

  return (
    <section className="file" aria-label={file.path}>
      <header className="file-head">
        {renaming === null ? (
          <h3 className="file-path" title={file.path}>
            {file.path}
          </h3>
        ) : (
          <form
            className="row file-rename"
            onSubmit={(e) => {
              e.preventDefault();
              if (!renameProblem && renaming !== file.path) change.mutate({ path: renaming });
            }}
          >
            <input aria-label="New path" value={renaming} autoFocus spellCheck={false} onChange={(e) => setRenaming(e.target.value.trim())} />
            <button type="submit" className="small" disabled={Boolean(renameProblem) || renaming === file.path}>
              Rename
            </button>
            <button type="button" className="small secondary" onClick={() => setRenaming(null)}>
              Cancel
            </button>
          </form>
        )}
        <p className="muted small-text">
          {size(file.size)} · {file.text ? 'text' : 'binary'} · changed by {who} {ago(new Date(file.updated_at).toISOString())}
          {' · '}
          <code title={file.sha256}>{file.sha256.slice(0, 12)}</code>
        </p>
        {renameProblem && <p className="error small-text">{renameProblem}</p>}
        <div className="row file-actions">
          {canEdit && (
            <label className="small file-exec">
              <input
                type="checkbox"
                checked={file.mode === '755'}
                disabled={change.isPending}
                onChange={(e) => change.mutate({ mode: e.target.checked ? '755' : '644' })}
              />{' '}
              Executable
            </label>
          )}
          <span className="grow" />
          {canEdit && renaming === null && (
            <button className="small secondary" onClick={() => setRenaming(file.path)}>
              Rename
            </button>
          )}
          {canEdit && (
            <>
              <button className="small secondary" onClick={() => replacePicker.current?.click()}>
                Replace…
              </button>
              <input
                ref={replacePicker}
                type="file"
                hidden
                onChange={(e) => {
                  const f = e.target.files?.[0];
                  if (f) replace.mutate(f);
                  e.target.value = '';
                }}
              />
            </>
          )}
          <a className="button secondary small" href={fileUrl(docId, file.path, file.sha256)} download={file.path.split('/').pop()}>
            Download
          </a>
          <button className="small secondary" aria-expanded={showVersions} onClick={() => setShowVersions((v) => !v)}>
            Versions
          </button>
          {canEdit && (
            <button
              className="small danger"
              disabled={remove.isPending}
              onClick={() => {
                if (window.confirm(`Remove ${file.path}? Its versions stay in the configuration's history.`)) remove.mutate();
              }}
            >
              Remove
            </button>
          )}
        </div>
      </header>
      <ErrorText error={change.error ?? remove.error ?? replace.error} />
      {showVersions && (
        <Versions
          docId={docId}
          file={file}
          canEdit={canEdit}
          onView={setViewing}
          onRestored={(sha) => {
            setBase(sha);
            setDraft(null);
          }}
        />
      )}
      {viewing ? (
        <OldVersion docId={docId} file={file} sha={viewing.sha} version={viewing.version} onClose={() => setViewing(null)} />
      ) : !file.text ? (
        <p className="muted file-binary">This file is not text: download it to look inside, or Replace it with a new version.</p>
      ) : text.isError ? (
        <ErrorText error={text.error} />
      ) : text.data === undefined ? (
        <p className="muted">Opening…</p>
      ) : (
        <>
          {newer && dirty && !conflict && (
            <p className="warning-note" role="status">
              {who} saved a newer version while you were editing. Your text is kept here; saving asks before it replaces theirs.
            </p>
          )}
          {conflict && (
            <div className="warning-note" role="alert">
              <p>{save.error?.message}</p>
              <div className="row">
                <button className="primary small" onClick={() => save.mutate(file.sha256)}>
                  Save mine anyway
                </button>
                <button
                  className="small secondary"
                  onClick={() => {
                    save.reset();
                    setBase(file.sha256);
                    setDraft(null);
                  }}
                >
                  Take theirs
                </button>
              </div>
            </div>
          )}
          <Suspense fallback={<p className="muted">Opening the editor…</p>}>
            <CodeEditor
              text={text.data}
              language={languageOf(file.path, text.data)}
              readOnly={!canEdit}
              label={`Contents of ${file.path}`}
              onChange={setDraft}
              onSave={() => dirty && save.mutate(base)}
            />
          </Suspense>
          {canEdit && (
            <div className="row file-save">
              <button className="primary small" disabled={!dirty || save.isPending} onClick={() => save.mutate(base)}>
                {save.isPending ? 'Saving…' : 'Save'}
              </button>
              <button className="secondary small" disabled={!dirty} onClick={() => (setDraft(null), save.reset(), setBase(file.sha256))}>
                Discard
              </button>
              <span className="muted small-text">{dirty ? 'Unsaved changes (Ctrl+S saves)' : 'Saved'}</span>
            </div>
          )}
          {!conflict && <ErrorText error={save.error} />}
        </>
      )}
    </section>
  );
}

interface Version {
  version: string;
  created_at: string;
  authors: { name?: string }[];
  file?: { sha256: string; size: number; mode: string } | null;
}

function Versions({
  docId,
  file,
  canEdit,
  onView,
  onRestored,
}: {
  docId: string;
  file: FileEntry;
  canEdit: boolean;
  onView: (v: { sha: string; version: string }) => void;
  onRestored: (sha: string) => void;
}) {
  const versions = useQuery({
    queryKey: ['config-file-versions', docId, file.path, file.sha256],
    // A change becomes a version a moment after it settles.
    refetchInterval: 3000,
    queryFn: async () =>
      (await unwrap(api.GET('/api/v1/documents/{id}/files/{path}/versions', { params: { path: { id: docId, path: file.path } } }))) as unknown as Version[],
  });
  const restore = useMutation({
    mutationFn: async (sha: string) => {
      const res = await fetch(fileUrl(docId, file.path, sha), { credentials: 'same-origin' });
      if (!res.ok) throw new Error(`That version could not be read (${res.status}).`);
      return writeFile(docId, file.path, await res.blob(), file.sha256);
    },
    onSuccess: (saved) => onRestored(saved.sha256),
  });
  if (versions.isError) return <ErrorText error={versions.error} />;
  if (!versions.data) return <p className="muted small-text">Reading the versions…</p>;
  return (
    <div className="file-versions">
      {versions.data.length === 0 && <p className="muted small-text">No versions yet: the first is made a moment after a change.</p>}
      <ol>
        {versions.data.map((v) => (
          <li key={v.version}>
            <span className="file-version">v{v.version}</span>
            <span className="muted small-text">
              {new Date(v.created_at).toLocaleString()} · {v.authors.map((a) => a.name).filter(Boolean).join(', ') || 'Quire'}
            </span>
            {v.file ? (
              <>
                <span className="muted small-text">{size(v.file.size)}</span>
                {v.file.sha256 === file.sha256 ? (
                  <span className="small">current</span>
                ) : (
                  <>
                    {file.text && (
                      <button className="link small" onClick={() => onView({ sha: v.file!.sha256, version: v.version })}>
                        View
                      </button>
                    )}
                    {canEdit && (
                      <button className="link small" disabled={restore.isPending} onClick={() => restore.mutate(v.file!.sha256)}>
                        Restore
                      </button>
                    )}
                  </>
                )}
              </>
            ) : (
              <span className="muted small-text">removed</span>
            )}
          </li>
        ))}
      </ol>
      <ErrorText error={restore.error} />
    </div>
  );
}

function OldVersion({ docId, file, sha, version, onClose }: { docId: string; file: FileEntry; sha: string; version: string; onClose: () => void }) {
  const text = useText(docId, file, sha);
  return (
    <div className="file-old">
      <div className="row">
        <strong className="small-text">As of v{version} (read only)</strong>
        <span className="grow" />
        <button className="small secondary" onClick={onClose}>
          Back to the current version
        </button>
      </div>
      {text.isError ? (
        <ErrorText error={text.error} />
      ) : text.data === undefined ? (
        <p className="muted">Opening…</p>
      ) : (
        <Suspense fallback={<p className="muted">Opening the editor…</p>}>
          <CodeEditor text={text.data} language={languageOf(file.path, text.data)} readOnly label={`${file.path} as of v${version}`} onChange={() => {}} onSave={() => {}} />
        </Suspense>
      )}
    </div>
  );
}
