// The agent's event stream: config versions applied, enrollment changes, certificates issued,
// renewed or dropped (published here, the last ones kept for `ambit query events`), and the data
// path's connections opened and closed and denials, streamed from its named channels
// (telemetry/events.ts) only while some subscriber wants them, and never kept: the data path stays
// silent when nobody listens. Fans events out to the query API's subscribers, by topic.

import { accessFields, closedFields } from '../proxy/connections.js';
import { connectionClosed, connectionDenied, connectionOpened, type EventChannel } from '../telemetry/events.js';

export type Topic = 'config' | 'enrollment' | 'certificates' | 'connections' | 'denials';
export const topics: Topic[] = ['config', 'enrollment', 'certificates', 'connections', 'denials'];

export interface AgentEvent {
  time: string;
  topic: Topic;
  data: unknown;
}

/** Starts listening on the data path for one topic, handing each event's data to `emit`; returns the stop. */
type LiveSource = (emit: (data: unknown) => void) => () => void;

/** Starts listening to one topic in other event loops of the agent; returns the stop. */
export type RemoteSource = (topic: Topic, emit: (data: unknown) => void) => () => void;

/**
 * A channel's messages, shaped for the API. The listener runs inside the data path's publish, and
 * diagnostics_channel rethrows a listener's error on the next tick (the process would end): a
 * message the API cannot shape or send is dropped instead.
 */
function listen<M>(channel: EventChannel<M>, shape: (message: M) => unknown): LiveSource {
  return (emit) =>
    channel.subscribe((message) => {
      try {
        emit(shape(message));
      } catch {
        // Dropped: the API's failure must never reach a connection.
      }
    });
}

/**
 * The data path's topics. A connection's fields are the access log's (`accessFields`); `opened`
 * and `closed` share an `id`. A denial says who asked for what, why (`code`, `reason`), and the
 * policy and rule when a policy decided.
 */
const liveSources: Partial<Record<Topic, LiveSource[]>> = {
  connections: [
    listen(connectionOpened, ({ connection: c }) => ({ event: 'opened', id: c.id, ...accessFields(c), decision: c.decision })),
    listen(connectionClosed, ({ connection: c, durationMs, error }) => ({ id: c.id, ...closedFields(c, durationMs, error) })),
  ],
  denials: [
    listen(connectionDenied, ({ connection, decision: d, code }) => ({
      event: 'denied',
      ...accessFields(connection),
      code,
      reason: d.reason,
      ...(d.policy ? { policy: d.policy, rule: d.rule, action: d.action } : {}),
    })),
  ],
};
const liveTopics = Object.keys(liveSources) as Topic[];

interface Subscriber {
  send: (e: AgentEvent) => void;
  /** undefined: every topic. */
  topics: Set<Topic> | undefined;
}

export class EventLog {
  private readonly recentEvents: AgentEvent[] = [];
  private readonly subscribers = new Set<Subscriber>();
  /** The data path's topics listened to now, with how many subscribers want each. */
  private readonly live = new Map<Topic, { subscribers: number; stop: () => void }>();

  /**
   * `remote`: more sources of the data path's topics, the worker threads' (agent/workers/), started
   * and stopped with this process's own.
   */
  constructor(
    private readonly capacity = 500,
    private readonly remote?: RemoteSource,
  ) {}

  publish(topic: Topic, data: unknown): void {
    const e: AgentEvent = { time: new Date().toISOString(), topic, data };
    this.recentEvents.push(e);
    if (this.recentEvents.length > this.capacity) this.recentEvents.shift();
    this.fanOut(e);
  }

  /** The kept events (not the data path's, which are only streamed). */
  recent(filter?: Set<Topic>): AgentEvent[] {
    return filter ? this.recentEvents.filter((e) => filter.has(e.topic)) : [...this.recentEvents];
  }

  /** `send` gets every new event of `wanted` (undefined: of every topic) until the returned function is called. */
  subscribe(send: (e: AgentEvent) => void, wanted?: Set<Topic>): () => void {
    const s: Subscriber = { send, topics: wanted };
    this.subscribers.add(s);
    const live = liveTopics.filter((t) => !wanted || wanted.has(t));
    for (const t of live) this.retain(t);
    return () => {
      if (!this.subscribers.delete(s)) return;
      for (const t of live) this.release(t);
    };
  }

  private fanOut(e: AgentEvent): void {
    for (const s of this.subscribers) if (!s.topics || s.topics.has(e.topic)) s.send(e);
  }

  private retain(topic: Topic): void {
    const l = this.live.get(topic);
    if (l) return void l.subscribers++;
    const emit = (data: unknown) => this.fanOut({ time: new Date().toISOString(), topic, data });
    const stops = liveSources[topic]!.map((start) => start(emit));
    if (this.remote) stops.push(this.remote(topic, emit));
    const stop = () => stops.forEach((s) => s());
    this.live.set(topic, { subscribers: 1, stop });
  }

  private release(topic: Topic): void {
    const l = this.live.get(topic);
    if (!l || --l.subscribers > 0) return;
    l.stop();
    this.live.delete(topic);
  }
}
