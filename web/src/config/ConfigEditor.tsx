// A board configuration, edited together: the form generated from the Armbian build schema
// (rjsf, checked live by AJV with the very schema the server checks with), who is on which
// setting, the other person's change as it lands, the server's verdict, and the expert
// view of the raw KEY=value lines Armbian's ./compile.sh takes.
import { createContext, useContext, useEffect, useMemo, useRef, useState, useSyncExternalStore } from 'react';
import { useQuery } from '@tanstack/react-query';
import Form from '@rjsf/core';
import type { ErrorSchema, FieldProps, FieldTemplateProps, ObjectFieldTemplateProps, RJSFSchema, UiSchema } from '@rjsf/utils';
import * as Y from 'yjs';
import { api, unwrap } from '../api/client';
import { collabFor, retain, type Collab } from '../collab/collab';
import { Presence, SaveBadge } from '../collab/Presence';
import { ErrorText, Problem as ProblemView } from '../components/Problem';
import { Actions, Layout, Model, type Action } from 'flexlayout-react';
import 'flexlayout-react/style/light.css';
import { ArtifactsPanel, BuildPanel, BuildsList, useShownBuild, useStartBuild } from './BuildsView';
import { FilesView } from './FilesView';
import { LAYOUT_VERSION, PREFERENCE, defaultLayout, restore, type PanelId } from './layout';
import {
  CONTENT,
  GROUPS,
  apply,
  command,
  explain,
  fieldOf,
  ordered,
  parseLines,
  read,
  setField,
  toLines,
  type BuildSchema,
  type Config,
  type LineError,
  type Problem,
} from './model';
import { validatorFor } from './validator';

interface Props {
  docId: string;
  userId: string;
  userName: string;
  canEdit: boolean;
}

/** The schema in force; the browser keeps it and asks again with its ETag. */
export function useBuildSchema() {
  return useQuery({
    queryKey: ['board-config-schema'],
    queryFn: async () => (await unwrap(api.GET('/api/v1/board-configs/schema'))) as unknown as BuildSchema,
    staleTime: 5 * 60_000,
  });
}

export function ConfigEditor({ docId, userId, userName, canEdit }: Props) {
  const collab = useMemo(() => collabFor(docId, { id: userId, name: userName }), [docId, userId, userName]);
  useEffect(() => retain(collab), [collab]);
  const schema = useBuildSchema();
  if (schema.isError) return <ProblemView error={schema.error} retry={() => schema.refetch()} />;
  if (!schema.data) return <p className="muted">Loading the Armbian build schema…</p>;
  return <Editor docId={docId} collab={collab} schema={schema.data} canEdit={canEdit} />;
}

/** The configuration in the shared map, re-read on every change to it. */
function useConfig(doc: Y.Doc): Config {
  const map = doc.getMap(CONTENT);
  const cache = useRef<{ config: Config } | null>(null);
  return useSyncExternalStore(
    (notify) => {
      const f = () => {
        cache.current = null;
        notify();
      };
      map.observe(f);
      return () => map.unobserve(f);
    },
    () => (cache.current ??= { config: read(map) }).config,
  );
}

interface Mark {
  name: string;
  color: string;
}

/** Who is on which setting now (others only), and who just changed one. */
const Marks = createContext<{ on: Record<string, Mark[]>; changed: Record<string, Mark> }>({ on: {}, changed: {} });

function usePeople(collab: Collab): Record<string, Mark[]> {
  const awareness = collab.provider.awareness;
  const key = useSyncExternalStore(
    (notify) => {
      awareness.on('change', notify);
      return () => awareness.off('change', notify);
    },
    () =>
      JSON.stringify(
        [...awareness.getStates()].filter(([id]) => id !== awareness.clientID).map(([, s]) => [s.field, s.user]),
      ),
  );
  return useMemo(() => {
    const on: Record<string, Mark[]> = {};
    for (const [field, user] of JSON.parse(key) as [string | undefined, Mark | undefined][]) {
      if (!field || !user) continue;
      if (!(on[field] ??= []).some((m) => m.name === user.name)) on[field].push({ name: user.name, color: user.color });
    }
    return on;
  }, [key]);
}

/** Settings someone else changed in the last few seconds, with who did. */
function useRemoteChanges(collab: Collab): Record<string, Mark> {
  const [changed, setChanged] = useState<Record<string, Mark>>({});
  useEffect(() => {
    const map = collab.doc.getMap(CONTENT);
    const timers: ReturnType<typeof setTimeout>[] = [];
    const f = (event: Y.YMapEvent<unknown>) => {
      if (event.transaction.local) return;
      const states = collab.provider.awareness.getStates();
      const marks: Record<string, Mark> = {};
      event.keysChanged.forEach((k) => {
        // The change's author is the client that wrote the entry now there.
        const item = (map as unknown as { _map: Map<string, { id: { client: number } }> })._map.get(k);
        const user = item ? (states.get(item.id.client)?.user as Mark | undefined) : undefined;
        marks[k] = { name: user?.name ?? '', color: user?.color ?? '#888' };
      });
      setChanged((c) => ({ ...c, ...marks }));
      timers.push(
        setTimeout(() => setChanged((c) => Object.fromEntries(Object.entries(c).filter(([k]) => !(k in marks)))), 4000),
      );
    };
    map.observe(f);
    return () => {
      map.unobserve(f);
      timers.forEach(clearTimeout);
    };
  }, [collab]);
  return changed;
}

function FieldTemplate(props: FieldTemplateProps) {
  const { id, label, required, description, errors, children, hidden, rawErrors, schema } = props;
  // A board or a release is drawn by its own field, whose label rjsf would leave out.
  const displayLabel = props.displayLabel || Boolean(schema.oneOf);
  const marks = useContext(Marks);
  if (hidden) return <div className="hidden">{children}</div>;
  if (id === 'root') return children;
  const field = fieldOf(id) ?? '';
  const people = marks.on[field] ?? [];
  const changed = marks.changed[field];
  const bad = (rawErrors ?? []).length > 0;
  return (
    <div
      className={`config-field${bad ? ' has-error' : ''}${changed ? ' just-changed' : ''}`}
      data-field={field}
      style={people[0] ? { boxShadow: `inset 3px 0 0 ${people[0].color}` } : undefined}
    >
      <div className="config-field-head">
        {displayLabel && (
          <label htmlFor={id}>
            {label}
            {required && <span aria-hidden> *</span>}
          </label>
        )}
        <code className="config-key">{field}</code>
        <span className="grow" />
        {people.map((p) => (
          <span key={p.name} className="config-person" style={{ background: p.color }} data-person={p.name} title={`${p.name} is on this setting`}>
            {p.name.split(' ')[0]}
          </span>
        ))}
        {changed && (
          <span className="config-changed" role="status" title={changed.name ? `changed by ${changed.name}` : 'changed just now'}>
            {changed.name ? `changed by ${changed.name.split(' ')[0]}` : 'changed'}
          </span>
        )}
      </div>
      {children}
      {displayLabel && description}
      {errors}
    </div>
  );
}

function ObjectFieldTemplate({ properties, uiSchema }: ObjectFieldTemplateProps) {
  const groups = (uiSchema?.['ui:groups'] as typeof GROUPS | undefined) ?? [];
  const placed = new Set(groups.flatMap((g) => g.fields));
  const byName = new Map(properties.map((p) => [p.name, p]));
  const rest = properties.filter((p) => !placed.has(p.name));
  return (
    <div className="config-groups">
      {[...groups, ...(rest.length ? [{ title: 'Other settings', fields: rest.map((p) => p.name) }] : [])].map((g) => {
        const shown = g.fields.map((f) => byName.get(f)).filter((p) => p && !p.hidden);
        if (!shown.length) return null;
        return (
          <fieldset key={g.title} className="config-group">
            <legend>{g.title}</legend>
            {shown.map((p) => (
              <div key={p!.name}>{p!.content}</div>
            ))}
          </fieldset>
        );
      })}
    </div>
  );
}

const SUPPORT: Record<string, string> = {
  supported: 'Supported',
  community: 'Community supported',
  end_of_support: 'End of support',
  tv_box: 'TV boxes',
};

/** A board or a release: one select of the schema's choices, grouped by support level, with
 * nothing chosen until someone chooses (rjsf would draw a `oneOf` as a chooser of schemas). */
function ChoiceField({ schema, formData, fieldPathId, onChange, onFocus, onBlur, readonly, disabled, rawErrors }: FieldProps) {
  const choices = (schema as FieldSchemaOf).oneOf ?? [];
  // A rule of the chosen board may narrow the choices (`enum` beside the `oneOf`).
  const allowed = (schema as FieldSchemaOf).enum;
  const groups = new Map<string, typeof choices>();
  for (const c of choices) {
    if (allowed && !allowed.includes(c.const)) continue;
    const g = SUPPORT[c['x-support'] ?? 'supported'] ?? 'Other';
    groups.set(g, [...(groups.get(g) ?? []), c]);
  }
  const value = typeof formData === 'string' ? formData : '';
  const known = choices.some((c) => c.const === value);
  const id = fieldPathId.$id;
  return (
    <select
      id={id}
      value={value}
      disabled={disabled || readonly}
      aria-invalid={(rawErrors ?? []).length > 0}
      onChange={(e) => onChange(e.target.value || undefined, fieldPathId.path, undefined, id)}
      onFocus={() => onFocus(id, value)}
      onBlur={() => onBlur(id, value)}
    >
      <option value="">Choose…</option>
      {value && !known && <option value={value}>{value} (not in this Armbian configuration)</option>}
      {[...groups].map(([label, cs]) => (
        <optgroup key={label} label={label}>
          {cs.map((c) => (
            <option key={String(c.const)} value={String(c.const)} title={c.description}>
              {c.title ?? String(c.const)}
            </option>
          ))}
        </optgroup>
      ))}
    </select>
  );
}

type FieldSchemaOf = BuildSchema['properties'][string];

function uiSchemaOf(schema: BuildSchema): UiSchema {
  const ui: UiSchema = { 'ui:groups': GROUPS, 'ui:submitButtonOptions': { norender: true } };
  for (const [k, p] of Object.entries(schema.properties)) {
    const yesNo = p.enum?.length === 2 && p.enum.includes('yes') && p.enum.includes('no');
    if (p.oneOf) ui[k] = { 'ui:field': ChoiceField, 'ui:fieldReplacesAnyOrOneOf': true };
    else if (yesNo) ui[k] = { 'ui:widget': 'radio', 'ui:options': { inline: true } };
    else if (p.enum) ui[k] = { 'ui:placeholder': 'Choose…' };
  }
  return ui;
}

function Editor({ docId, collab, schema, canEdit }: { docId: string; collab: Collab; schema: BuildSchema; canEdit: boolean }) {
  const config = useConfig(collab.doc);
  const on = usePeople(collab);
  const changed = useRemoteChanges(collab);
  const marks = useMemo(() => ({ on, changed }), [on, changed]);
  const ui = useMemo(() => uiSchemaOf(schema), [schema]);
  const [view, setView] = useState<'form' | 'lines'>('form');
  const [chosen, setChosen] = useState<string>();
  const shown = useShownBuild(docId, chosen);
  const start = useStartBuild(docId);
  const layout = usePanelLayout();
  const origin = useMemo(() => ({ local: true }), []);
  const focus = (id?: string) => {
    const field = fieldOf(id);
    collab.provider.awareness.setLocalStateField('field', field ?? null);
    collab.provider.awareness.setLocalStateField('section', field ? (schema.properties[field]?.title ?? field) : null);
  };
  useEffect(() => () => focus(undefined), []); // eslint-disable-line react-hooks/exhaustive-deps
  const board = typeof config.BOARD === 'string' ? schema.properties.BOARD?.oneOf?.find((b) => b.const === config.BOARD) : undefined;
  const { validator, inBrowser } = useMemo(() => validatorFor(schema), [schema]);
  const check = useServerCheck(config);
  // Without the browser's own check, the server's answer is shown by each field.
  const extraErrors = useMemo(() => {
    if (inBrowser || !check.data) return undefined;
    const out: Record<string, { __errors: string[] }> = {};
    for (const p of check.data.problems) {
      if (p.severity !== 'error') continue;
      (out[p.path.replace(/^\//, '')] ??= { __errors: [] }).__errors.push(p.message);
    }
    return out as ErrorSchema;
  }, [inBrowser, check.data]);

  const panel = (id: PanelId) => {
    switch (id) {
      case 'settings':
        return (
          <div className="panel-scroll">
            <div className="tabs panel-tabs" role="tablist" aria-label="View">
              <button role="tab" aria-selected={view === 'form'} className={view === 'form' ? 'tab active' : 'tab'} onClick={() => setView('form')}>
                Form
              </button>
              <button role="tab" aria-selected={view === 'lines'} className={view === 'lines' ? 'tab active' : 'tab'} onClick={() => setView('lines')}>
                KEY=value
              </button>
            </div>
            <section className="config-main" aria-label="Configuration">
              {view === 'form' ? (
                <Marks.Provider value={marks}>
                  <Form
                    schema={schema as unknown as RJSFSchema}
                    uiSchema={ui}
                    formData={config}
                    validator={validator}
                    liveValidate={inBrowser ? 'onChange' : undefined}
                    extraErrors={extraErrors}
                    showErrorList={false}
                    // A rule's `const` (no desktop on a minimal image) is checked, not forced.
                    experimental_defaultFormStateBehavior={{ constAsDefaults: 'never' }}
                    readonly={!canEdit}
                    templates={{ FieldTemplate, ObjectFieldTemplate }}
                    transformErrors={(errors) => explain(errors, config, schema)}
                    onFocus={(id) => focus(id)}
                    onBlur={() => focus(undefined)}
                    onChange={(e, id) => {
                      const field = fieldOf(id);
                      if (!field || !canEdit) return;
                      const value = (e.formData as Config | undefined)?.[field];
                      setField(collab.doc, field, value, origin);
                    }}
                  />
                </Marks.Provider>
              ) : (
                <Lines config={config} schema={schema} canEdit={canEdit} onApply={(c) => apply(collab.doc, c, origin)} />
              )}
            </section>
          </div>
        );
      case 'check':
        return (
          <div className="panel-scroll config-side">
            {board && (
              <div className="card config-board">
                <h3>{board.title}</h3>
                <p className="muted">{board.description}</p>
              </div>
            )}
            <ServerCheck check={check} />
            <div className="card">
              <h3>Build command</h3>
              <pre className="config-command" data-testid="command">
                {command(config, schema)}
              </pre>
            </div>
          </div>
        );
      case 'files':
        return <FilesView docId={docId} doc={collab.doc} canEdit={canEdit} />;
      case 'builds':
        return (
          <div className="panel-scroll">
            <BuildsList docId={docId} shown={shown} onSelect={(id) => (setChosen(id), layout.show('build'))} />
          </div>
        );
      case 'build':
        return <BuildPanel key={shown} id={shown} />;
      case 'artifacts':
        return (
          <div className="panel-scroll">
            <ArtifactsPanel id={shown} />
          </div>
        );
    }
  };

  return (
    <div className="config-page">
      <div className="config-bar row">
        {canEdit && (
          <button
            className="primary small"
            disabled={!check.data?.valid || start.isPending}
            title={check.data && !check.data.valid ? 'Fix the problems the check lists first' : 'Build the image this configuration describes'}
            onClick={() =>
              start.mutate(undefined, {
                onSuccess: (b) => {
                  setChosen(b.id);
                  layout.show('build');
                },
              })
            }
          >
            Build
          </button>
        )}
        <span className={`small config-verdict ${check.data?.valid ? 'ok' : 'bad'}`}>
          {check.data ? (check.data.valid ? 'Ready to build' : 'Not buildable yet: see Check') : 'Checking…'}
        </span>
        <span className="grow" />
        <button className="link small" onClick={layout.reset} title="Put the panels back where they started">
          Reset panels
        </button>
        <Presence collab={collab} />
        <SaveBadge collab={collab} />
      </div>
      <ErrorText error={start.error} />
      <div className="config-panels">
        {layout.model ? (
          <Layout model={layout.model} factory={(node) => panel(node.getComponent() as PanelId)} onModelChange={layout.changed} supportsPopout={false} />
        ) : (
          <p className="muted">Laying out the panels…</p>
        )}
      </div>
    </div>
  );
}

/** The panels' layout: the person's own, kept on the server (every device they use), or the
 * default; changes are kept a moment after they stop. */
function usePanelLayout() {
  const [model, setModel] = useState<Model>();
  const timer = useRef<ReturnType<typeof setTimeout>>(undefined);
  useEffect(() => {
    let live = true;
    api
      .GET('/api/v1/me/preferences/{key}', { params: { path: { key: PREFERENCE } } })
      .then(({ data }) => live && setModel(Model.fromJson(restore(data ?? null))))
      .catch(() => live && setModel(Model.fromJson(defaultLayout())));
    return () => {
      live = false;
      clearTimeout(timer.current);
    };
  }, []);
  const keep = (m: Model | null) => {
    clearTimeout(timer.current);
    timer.current = setTimeout(() => {
      const req = m
        ? api.PUT('/api/v1/me/preferences/{key}', {
            params: { path: { key: PREFERENCE } },
            body: { v: LAYOUT_VERSION, model: m.toJson() } as unknown as Record<string, never>,
          })
        : api.DELETE('/api/v1/me/preferences/{key}', { params: { path: { key: PREFERENCE } } });
      // Not keeping a layout costs the person nothing now; the next change tries again.
      void req.catch(() => {});
    }, 800);
  };
  return {
    model,
    changed: (m: Model, action: Action) => {
      // Choosing a tab is not a change of layout.
      if (action.type !== Actions.SET_ACTIVE_TABSET) keep(m);
    },
    show: (id: PanelId) => {
      model?.doAction(Actions.selectTab(id));
    },
    reset: () => {
      setModel(Model.fromJson(defaultLayout()));
      keep(null);
    },
  };
}

/** The server's verdict on the configuration as it is now (cached there by hash). */
function useServerCheck(config: Config) {
  const [debounced, setDebounced] = useState(config);
  useEffect(() => {
    const t = setTimeout(() => setDebounced(config), 300);
    return () => clearTimeout(t);
  }, [config]);
  return useQuery({
    queryKey: ['board-config-validate', debounced],
    queryFn: () => unwrap(api.POST('/api/v1/board-configs/validate', { body: { config: debounced } })),
    placeholderData: (previous) => previous,
  });
}

function ServerCheck({ check }: { check: ReturnType<typeof useServerCheck> }) {
  if (check.isError) return <ProblemView error={check.error} retry={() => check.refetch()} />;
  const v = check.data;
  if (!v) return <div className="card muted">Checking…</div>;
  const problems = v.problems as Problem[];
  const errors = problems.filter((p) => p.severity === 'error');
  return (
    <div className={`card config-check ${v.valid ? 'ok' : 'bad'}`} data-testid="server-check" data-valid={v.valid}>
      <h3>{v.valid ? (problems.length ? 'Buildable, with warnings' : 'Ready to build') : `${errors.length} to fix before building`}</h3>
      {problems.length > 0 && (
        <ul>
          {problems.map((p) => (
            <li key={`${p.path}${p.code}`} className={`sev-${p.severity}`}>
              <code>{p.path.replace(/^\//, '') || 'configuration'}</code> {p.message}
            </li>
          ))}
        </ul>
      )}
      <p className="muted small">Checked by the server against Armbian {v.schema_version}.</p>
    </div>
  );
}

/** The expert view: the raw lines, applied as a whole (only what changed is written). */
function Lines({ config, schema, canEdit, onApply }: { config: Config; schema: BuildSchema; canEdit: boolean; onApply: (c: Config) => void }) {
  const current = toLines(config, schema);
  const [text, setText] = useState(current);
  const [errors, setErrors] = useState<LineError[]>([]);
  const [base, setBase] = useState(current);
  // Others' changes show as they land unless this person is in the middle of an edit.
  if (current !== base && text === base) {
    setBase(current);
    setText(current);
  }
  const dirty = text !== base;
  return (
    <div className="config-lines">
      <p className="muted small" id="config-lines-help">
        One setting per line, as <code>./compile.sh build</code> takes them. Settings Quire's form does not show (any
        variable Armbian reads) go here too.
      </p>
      <textarea
        id="config-lines"
        aria-label="Settings as KEY=value lines"
        aria-describedby="config-lines-help"
        spellCheck={false}
        readOnly={!canEdit}
        value={text}
        rows={Math.max(12, text.split('\n').length + 2)}
        onChange={(e) => setText(e.target.value)}
      />
      {errors.length > 0 && (
        <ul className="error-list" role="alert">
          {errors.map((e) => (
            <li key={e.line}>
              Line {e.line}: {e.message}
            </li>
          ))}
        </ul>
      )}
      {canEdit && (
        <div className="row">
          <button
            disabled={!dirty}
            onClick={() => {
              const parsed = parseLines(text, schema);
              setErrors(parsed.errors);
              if (parsed.errors.some((e) => !e.message.includes('set twice'))) return;
              onApply(parsed.config);
              const now = toLines(parsed.config, schema);
              setBase(now);
              setText(now);
            }}
          >
            Apply
          </button>
          <button className="secondary" disabled={!dirty} onClick={() => (setText(current), setBase(current), setErrors([]))}>
            Discard
          </button>
          <span className="muted small">{ordered(config, schema).length} settings</span>
        </div>
      )}
    </div>
  );
}
