// The capture suite with the agents' ebpf redirect.

import { captureSuite } from './capture-suite.js';

captureSuite('ebpf');
