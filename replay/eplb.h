/* DeepSeek EPLB's balancer, re-implemented in C from its published algorithm
 * (the same description as scripts/eplb_reference.py), so that the replay can
 * score what users of EPLB-style rebalancing (DeepSeek, vLLM, SGLang) get:
 * the `eplb` policy re-places from scratch with it every interval, on the
 * previous interval's loads, and routes with equal shares. */
#ifndef MOEPLACE_REPLAY_EPLB_H
#define MOEPLACE_REPLAY_EPLB_H

/* One layer: loads w [E] onto R ranks x S slots (every slot gets a replica,
 * as in EPLB) into phy2log [R*S]. Hierarchical policy when nodes > 1, groups
 * > 1 and nodes divides groups (groups of E / groups contiguous experts packed
 * onto nodes, replicas and ranks chosen inside each node); otherwise the
 * global policy (one group, one node). Needs R*S >= E, E % groups == 0,
 * R % nodes == 0 and, for the hierarchical policy, (R*S / nodes) >= E / nodes.
 * Like EPLB, two replicas of one expert may share a rank. Returns
 * MOEPLACE_OK, MOEPLACE_ERR_ARG (a shape EPLB cannot take) or
 * MOEPLACE_ERR_NOMEM. */
int mp_eplb_layer(const double *w, int E, int R, int S, int nodes, int groups, int *phy2log);

#endif
