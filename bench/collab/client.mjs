// A lean Yjs sync client for the benchmark: it speaks the y-websocket protocol (Quire and
// @y/websocket-server) and Hocuspocus's framing of it (each message prefixed with the
// document name, an authentication message first), so that every server is driven by the
// same client code and the client's own cost stays small and equal for all.
import { WebSocket } from 'ws'
import * as Y from 'yjs'
import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'

const SYNC = 0
const AWARENESS = 1
const AUTH = 2
const SYNC_REPLY = 4
const STEP1 = 0
const STEP2 = 1
const UPDATE = 2

/** Where and how to connect: `{ kind: 'y' | 'hocuspocus', url, room, token }`. */
export class Client {
  constructor (target, { doc = null, onUpdate = null, onAwareness = null } = {}) {
    this.target = target
    this.doc = doc
    this.onUpdate = onUpdate
    this.onAwareness = onAwareness
    this.synced = false
    this.hocus = target.kind === 'hocuspocus'
    if (doc) {
      doc.on('update', (update, origin) => {
        if (origin !== this) this.send(SYNC, (e) => { encoding.writeVarUint(e, UPDATE); encoding.writeVarUint8Array(e, update) })
      })
    }
  }

  /** Opens the socket and resolves once the server's full state has arrived (sync step 2). */
  connect () {
    const { kind, url, room, token } = this.target
    const address = kind === 'hocuspocus' ? url : `${url}/${room}${token ? `?token=${encodeURIComponent(token)}` : ''}`
    this.started = process.hrtime.bigint()
    this.ws = new WebSocket(address, { perMessageDeflate: false })
    this.ws.binaryType = 'nodebuffer'
    return new Promise((resolve, reject) => {
      this.resolveSynced = resolve
      this.ws.on('error', reject)
      this.ws.on('close', (code) => { if (!this.synced) reject(new Error(`closed before sync: ${code}`)) })
      this.ws.on('open', () => {
        if (this.hocus) {
          const e = this.frame(AUTH)
          encoding.writeVarUint(e, 0)
          encoding.writeVarString(e, token || 'bench')
          this.ws.send(encoding.toUint8Array(e))
        }
        this.send(SYNC, (e) => {
          encoding.writeVarUint(e, STEP1)
          encoding.writeVarUint8Array(e, this.doc ? Y.encodeStateVector(this.doc) : new Uint8Array([0]))
        })
      })
      this.ws.on('message', (data) => this.receive(data))
    })
  }

  frame (type) {
    const e = encoding.createEncoder()
    if (this.hocus) encoding.writeVarString(e, this.target.room)
    encoding.writeVarUint(e, type)
    return e
  }

  send (type, write) {
    if (!this.ws || this.ws.readyState !== 1) return
    const e = this.frame(type)
    write(e)
    this.ws.send(encoding.toUint8Array(e))
  }

  sendAwareness (update) {
    this.send(AWARENESS, (e) => encoding.writeVarUint8Array(e, update))
  }

  receive (data) {
    const at = process.hrtime.bigint()
    const d = decoding.createDecoder(data)
    if (this.hocus) decoding.readVarString(d)
    const type = decoding.readVarUint(d)
    if (type === AWARENESS) {
      // The number of client states the message carries.
      if (this.onAwareness) this.onAwareness(at, decoding.readVarUint(decoding.createDecoder(decoding.readVarUint8Array(d))))
      return
    }
    // Hocuspocus sends its own sync step 1 as a 'sync reply' (4); it reads the same.
    if (type !== SYNC && type !== SYNC_REPLY) return
    const step = decoding.readVarUint(d)
    if (step === STEP1) {
      // Answer with what the server lacks, as y-protocols does.
      const sv = decoding.readVarUint8Array(d)
      const update = this.doc ? Y.encodeStateAsUpdate(this.doc, sv) : new Uint8Array([0, 0])
      this.send(SYNC, (e) => { encoding.writeVarUint(e, STEP2); encoding.writeVarUint8Array(e, update) })
      return
    }
    const update = decoding.readVarUint8Array(d)
    if (this.doc) Y.applyUpdate(this.doc, update, this)
    if (step === STEP2 && !this.synced) {
      this.synced = true
      this.syncedAt = at
      this.syncBytes = update.byteLength
      this.resolveSynced()
    } else if (this.onUpdate) {
      this.onUpdate(update, at)
    }
  }

  close () {
    if (this.ws) this.ws.terminate()
  }
}
