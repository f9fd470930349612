import type { ReactNode } from 'react';
import { useEditorState, type Editor } from '@tiptap/react';

const icon = (path: string) => (
  <svg viewBox="0 0 24 24" width="16" height="16" aria-hidden="true" fill="none" stroke="currentColor" strokeWidth="2" strokeLinecap="round" strokeLinejoin="round">
    <path d={path} />
  </svg>
);
const linkIcon = icon('M10 14a4 4 0 0 0 5.7 0l3-3a4 4 0 0 0-5.7-5.7l-1 1M14 10a4 4 0 0 0-5.7 0l-3 3a4 4 0 0 0 5.7 5.7l1-1');
const imageIcon = icon('M4 5h16v14H4zM4 16l5-5 4 4 2-2 5 5M15 9h.01');

interface Tool {
  label: string;
  text: ReactNode;
  keys?: string;
  active?: (e: Editor) => boolean;
  run: (e: Editor) => void;
}

const tools: Tool[][] = [
  [
    { label: 'Heading 1', text: 'H1', active: (e) => e.isActive('heading', { level: 1 }), run: (e) => e.chain().focus().toggleHeading({ level: 1 }).run() },
    { label: 'Heading 2', text: 'H2', active: (e) => e.isActive('heading', { level: 2 }), run: (e) => e.chain().focus().toggleHeading({ level: 2 }).run() },
    { label: 'Heading 3', text: 'H3', active: (e) => e.isActive('heading', { level: 3 }), run: (e) => e.chain().focus().toggleHeading({ level: 3 }).run() },
  ],
  [
    { label: 'Bold', text: 'B', keys: 'Ctrl+B', active: (e) => e.isActive('bold'), run: (e) => e.chain().focus().toggleBold().run() },
    { label: 'Italic', text: 'I', keys: 'Ctrl+I', active: (e) => e.isActive('italic'), run: (e) => e.chain().focus().toggleItalic().run() },
    { label: 'Strikethrough', text: 'S', active: (e) => e.isActive('strike'), run: (e) => e.chain().focus().toggleStrike().run() },
    { label: 'Code', text: '</>', active: (e) => e.isActive('code'), run: (e) => e.chain().focus().toggleCode().run() },
    {
      label: 'Link',
      text: linkIcon,
      active: (e) => e.isActive('link'),
      run: (e) => {
        const previous = e.getAttributes('link').href as string | undefined;
        const href = window.prompt('Link address (empty to remove)', previous ?? 'https://');
        if (href === null) return;
        if (href.trim() === '') e.chain().focus().extendMarkRange('link').unsetLink().run();
        else e.chain().focus().extendMarkRange('link').setLink({ href: href.trim() }).run();
      },
    },
  ],
  [
    { label: 'Bullet list', text: '•', active: (e) => e.isActive('bulletList'), run: (e) => e.chain().focus().toggleBulletList().run() },
    { label: 'Numbered list', text: '1.', active: (e) => e.isActive('orderedList'), run: (e) => e.chain().focus().toggleOrderedList().run() },
    { label: 'Task list', text: '☑', active: (e) => e.isActive('taskList'), run: (e) => e.chain().focus().toggleTaskList().run() },
    { label: 'Quote', text: '❝', active: (e) => e.isActive('blockquote'), run: (e) => e.chain().focus().toggleBlockquote().run() },
    { label: 'Code block', text: '{ }', active: (e) => e.isActive('codeBlock'), run: (e) => e.chain().focus().toggleCodeBlock().run() },
  ],
  [
    { label: 'Table', text: '▦', run: (e) => e.chain().focus().insertTable({ rows: 3, cols: 3, withHeaderRow: true }).run() },
    {
      label: 'Image',
      text: imageIcon,
      run: (e) => {
        const src = window.prompt('Image address');
        if (src?.trim()) e.chain().focus().setImage({ src: src.trim() }).run();
      },
    },
    { label: 'Divider', text: '―', run: (e) => e.chain().focus().setHorizontalRule().run() },
  ],
  [
    { label: 'Undo', text: '↶', keys: 'Ctrl+Z', run: (e) => e.chain().focus().undo().run() },
    { label: 'Redo', text: '↷', keys: 'Ctrl+Shift+Z', run: (e) => e.chain().focus().redo().run() },
  ],
];

/** The formatting buttons, each with its name for screen readers and its state. */
export function Toolbar({ editor }: { editor: Editor }) {
  const active = useEditorState({
    editor,
    selector: ({ editor: e }) => tools.flat().map((t) => t.active?.(e) ?? false),
    equalityFn: (a, b) => !!b && a.every((x, i) => x === b[i]),
  });
  let i = 0;
  return (
    <div className="toolbar-buttons" role="toolbar" aria-label="Formatting">
      {tools.map((group, g) => (
        <div className="tool-group" key={g}>
          {group.map((t) => {
            const on = active[i++];
            return (
              <button
                key={t.label}
                type="button"
                className={on ? 'tool on' : 'tool'}
                aria-label={t.label}
                aria-pressed={t.active ? on : undefined}
                title={t.keys ? `${t.label} (${t.keys})` : t.label}
                disabled={!editor.isEditable}
                onMouseDown={(ev) => ev.preventDefault()}
                onClick={() => t.run(editor)}
              >
                {t.text}
              </button>
            );
          })}
        </div>
      ))}
    </div>
  );
}
