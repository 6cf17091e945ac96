// The subcommands of `ambit`, by name, each loaded only when it runs: the agent and the sample
// servers are long-running processes started through this CLI, and loading the controller, the
// schemas and the CA into every agent cost about 18 MB of memory and a slower start per command.

import type { CliContext } from '../context.js';

export type Command = (ctx: CliContext, args: string[]) => Promise<number | void>;

const lazy =
  <M>(load: () => Promise<M>, pick: (m: M) => Command): Command =>
  async (ctx, args) =>
    pick(await load())(ctx, args);

export const commands: Record<string, Command> = {
  up: lazy(() => import('./up.js'), (m) => m.up),
  down: lazy(() => import('./down.js'), (m) => m.down),
  status: lazy(() => import('./status.js'), (m) => m.status),
  demo: lazy(() => import('./demo.js'), (m) => m.demo),
  apply: lazy(() => import('./apply.js'), (m) => m.apply),
  get: lazy(() => import('./get.js'), (m) => m.get),
  delete: lazy(() => import('./delete.js'), (m) => m.del),
  exec: lazy(() => import('./exec.js'), (m) => m.exec),
  logs: lazy(() => import('./exec.js'), (m) => m.logs),
  query: lazy(() => import('./query.js'), (m) => m.query),
  agents: lazy(() => import('./agents.js'), (m) => m.agents),
  enroll: lazy(() => import('./agents.js'), (m) => m.enroll),
  unenroll: lazy(() => import('./agents.js'), (m) => m.unenroll),
  explain: lazy(() => import('./explain.js'), (m) => m.explain),
  kubeconfig: lazy(() => import('./kubeconfig.js'), (m) => m.kubeconfig),
  ca: lazy(() => import('./ca.js'), (m) => m.ca),
  controller: lazy(() => import('./controller.js'), (m) => m.controller),
  'local-cluster': lazy(() => import('./local-cluster.js'), (m) => m.localCluster),
  agent: lazy(() => import('./agent.js'), (m) => m.agent),
  sample: lazy(() => import('./sample.js'), (m) => m.sample),
  estimate: lazy(() => import('./estimate.js'), (m) => m.estimateCommand),
  waypoint: lazy(() => import('./waypoint.js'), (m) => m.waypoint),
  install: lazy(() => import('./install.js'), (m) => m.install),
  uninstall: lazy(() => import('./install.js'), (m) => m.uninstall),
};
