// The capture suite with the agents' iptables redirect.

import { captureSuite } from './capture-suite.js';

captureSuite('iptables');
