// A local stand-in for an OpenAI-compatible server, speaking its real wire format
// (POST /v1/chat/completions with `stream: true` answered as Server-Sent Events), so the
// browser test can watch a draft stream in slowly enough to see it. Each call answers the
// next reply in turn; `gate` holds a reply back until it is opened, to catch the draft
// mid-generation.
import { createServer } from 'node:http';

export async function startFakeOpenAI(replies, { chunkDelayMs = 120 } = {}) {
  let calls = 0;
  let release = () => {};
  let held = Promise.resolve();
  const server = createServer((req, res) => {
    if (req.method !== 'POST' || req.url !== '/v1/chat/completions') {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { message: `no route ${req.method} ${req.url}` } }));
      return;
    }
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', async () => {
      const reply = replies[Math.min(calls, replies.length - 1)];
      calls += 1;
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      const words = reply.split(/(?<=\s)/);
      const send = (obj) => res.write(`data: ${JSON.stringify(obj)}\n\n`);
      for (let i = 0; i < words.length; i += 4) {
        if (res.destroyed) return;
        send({ model: 'fake-writer', choices: [{ index: 0, delta: { content: words.slice(i, i + 4).join('') } }] });
        await new Promise((r) => setTimeout(r, chunkDelayMs));
        // Half-way through, wait while the test holds the reply.
        if (i + 4 >= words.length / 2 && i < words.length / 2) await held;
      }
      send({
        model: 'fake-writer',
        choices: [{ index: 0, delta: {}, finish_reason: 'stop' }],
        usage: { prompt_tokens: 50, completion_tokens: words.length },
      });
      res.end('data: [DONE]\n\n');
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}/v1`,
    calls: () => calls,
    /** Holds every reply half-way until `open()`. */
    hold() {
      held = new Promise((r) => (release = r));
    },
    open() {
      release();
    },
    close: () => new Promise((r) => server.close(r)),
  };
}

/** A PRD whose every section says the same sentence over and over, as small models loop. */
export function loopingReply(title) {
  const heads = ['Problem', 'Goals', 'Non-goals', 'Personas', 'User stories', 'Requirements', 'Success metrics', 'Risks', 'Timeline', 'Open questions'];
  return `# ${title}\n\n` + heads.map((h) => `## ${h}\n\n${'The field kit must sync notes offline. '.repeat(3)}\n`).join('\n');
}

/** A PRD in the built-in template's ten sections, each of them with real sentences. */
export function prdReply(title, flavour) {
  const sections = [
    ['Problem', `Field teams lose their notes when they work offline, and ${flavour} matters to them.`],
    ['Goals', 'Notes written offline reach the server within a minute of the connection returning.'],
    ['Non-goals', 'Real-time co-editing while offline is out of scope for this release.'],
    ['Personas', 'Field technicians who visit sites without coverage, and their dispatchers.'],
    ['User stories', 'As a technician, I want my notes kept on the device, so that nothing is lost.'],
    ['Requirements', 'Notes are stored locally first and synced in order; conflicts keep both edits.'],
    ['Success metrics', 'Lost-note reports drop to zero within a month of launch.'],
    ['Risks', 'Devices with little storage may fill up; old synced notes are pruned first.'],
    ['Timeline', 'Local storage first, then sync, then conflict review, each two weeks apart.'],
    ['Open questions', 'Which devices must be supported at launch, and who decides?'],
  ];
  return `# ${title}\n\n` + sections.map(([h, t]) => `## ${h}\n\n${t}\n`).join('\n');
}
