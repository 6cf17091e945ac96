// The agent's event stream: config versions applied, enrollment changes, certificates issued,
// renewed or dropped, and (from the proxy)
// connections opened and closed and policy denials. Keeps the last events for `ambit query events`
// and fans new ones out to subscribers of the query API.

export type Topic = 'config' | 'enrollment' | 'certificates' | 'connections' | 'denials';
export const topics: Topic[] = ['config', 'enrollment', 'certificates', 'connections', 'denials'];

export interface AgentEvent {
  time: string;
  topic: Topic;
  data: unknown;
}

export class EventLog {
  private readonly recentEvents: AgentEvent[] = [];
  private readonly subscribers = new Set<(e: AgentEvent) => void>();

  constructor(private readonly capacity = 500) {}

  publish(topic: Topic, data: unknown): void {
    const e: AgentEvent = { time: new Date().toISOString(), topic, data };
    this.recentEvents.push(e);
    if (this.recentEvents.length > this.capacity) this.recentEvents.shift();
    for (const s of this.subscribers) s(e);
  }

  recent(filter?: Set<Topic>): AgentEvent[] {
    return filter ? this.recentEvents.filter((e) => filter.has(e.topic)) : [...this.recentEvents];
  }

  subscribe(fn: (e: AgentEvent) => void): () => void {
    this.subscribers.add(fn);
    return () => this.subscribers.delete(fn);
  }
}
