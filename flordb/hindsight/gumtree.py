"""GumTree matching (Falleri et al., ASE 2014) over generic labelled trees.

:class:`Tree` nodes carry a *label* (a node type), an optional *value* (an identifier, a
literal, an operator) and ordered children. :func:`match` maps nodes of a source tree to nodes
of a destination tree in two phases:

1. **Top-down**: isomorphic subtrees (same labels, values and shape) are matched greedily from
   the tallest down to ``min_height``. A subtree with several isomorphic candidates is matched
   only after the unique ones, the candidates ranked by the dice similarity of their parents.
2. **Bottom-up**: an unmatched source node with matched descendants is matched to the
   same-label destination ancestor of those matches with the highest dice similarity, if it is
   at least ``min_dice``; then, for pairs smaller than ``max_size``, a *recovery* step matches
   their remaining descendants: children in longest-common-subsequence order, first isomorphic
   ones, then ones with equal label and value, then ones whose label is unique among the
   unmatched children on both sides (GumTree's "simple" recovery, which needs no optimal
   edit script and behaves the same on the small subtrees it runs on).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass(eq=False)
class Tree:
    """A node: ``label``, ``value``, ``children``; ``origin`` links back to the source node."""

    label: str
    value: str | None = None
    children: list[Tree] = field(default_factory=list)
    origin: Any = None
    parent: Tree | None = field(default=None, repr=False)
    height: int = 1
    size: int = 1
    digest: int = 0
    pre: int = 0  # preorder index, set by index()
    order: list[Tree] = field(default_factory=list, repr=False)  # root only: preorder list

    def __post_init__(self) -> None:
        for child in self.children:
            child.parent = self
        self.height = 1 + max((c.height for c in self.children), default=0)
        self.size = 1 + sum(c.size for c in self.children)
        self.digest = hash((self.label, self.value, tuple(c.digest for c in self.children)))

    def preorder(self) -> Iterator[Tree]:
        stack = [self]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(node.children))

    def postorder(self) -> Iterator[Tree]:
        for child in self.children:
            yield from child.postorder()
        yield self

    def descendants(self) -> list[Tree]:
        """Every node below this one, in preorder (after :func:`index` of the root)."""
        root = self
        while root.parent is not None:
            root = root.parent
        return root.order[self.pre + 1:self.pre + self.size]

    def contains(self, node: Tree) -> bool:
        """Whether ``node`` is a proper descendant (after :func:`index` of the root)."""
        return self.pre < node.pre < self.pre + self.size

    def ancestors(self) -> Iterator[Tree]:
        node = self.parent
        while node is not None:
            yield node
            node = node.parent

    def isomorphic(self, other: Tree) -> bool:
        """Same labels, values and shape (the structural digests agree)."""
        return self.digest == other.digest and self.size == other.size \
            and self.label == other.label


class Mapping:
    """A one-to-one partial map between source and destination nodes."""

    def __init__(self) -> None:
        self.src_to_dst: dict[int, Tree] = {}
        self.dst_to_src: dict[int, Tree] = {}

    def add(self, src: Tree, dst: Tree) -> None:
        self.src_to_dst[id(src)] = dst
        self.dst_to_src[id(dst)] = src

    def dst(self, src: Tree) -> Tree | None:
        return self.src_to_dst.get(id(src))

    def src(self, dst: Tree) -> Tree | None:
        return self.dst_to_src.get(id(dst))

    def has_src(self, src: Tree) -> bool:
        return id(src) in self.src_to_dst

    def has_dst(self, dst: Tree) -> bool:
        return id(dst) in self.dst_to_src

    def __len__(self) -> int:
        return len(self.src_to_dst)

    def add_isomorphic(self, src: Tree, dst: Tree) -> None:
        for a, b in zip(src.preorder(), dst.preorder()):
            self.add(a, b)


def index(root: Tree) -> Tree:
    """Number ``root``'s nodes in preorder so descendant tests take constant time."""
    root.order = list(root.preorder())
    for i, t in enumerate(root.order):
        t.pre = i
    return root


def dice(src: Tree, dst: Tree, mapping: Mapping) -> float:
    """``2·|mapped descendants of src whose image descends from dst|``, divided by
    ``|desc src| + |desc dst|``."""
    if src.size + dst.size <= 2:
        return 0.0
    images = mapping.src_to_dst
    lo, hi = dst.pre, dst.pre + dst.size
    common = 0
    for d in src.descendants():
        image = images.get(id(d))
        if image is not None and lo < image.pre < hi:
            common += 1
    return 2 * common / (src.size - 1 + dst.size - 1)


#: Candidates considered per ambiguous subtree (GumTree considers all; repetitive generated
#: code would make that quadratic).
_MAX_CANDIDATES = 32


def match(src: Tree, dst: Tree, min_height: int = 2, min_dice: float = 0.5,
          max_size: int = 100, renamable: frozenset[str] = frozenset(),
          anchors: Callable[[], list[tuple[Tree, Tree]]] | None = None) -> Mapping:
    """The GumTree mapping from ``src`` to ``dst``.

    With ``renamable`` labels (identifiers), a second top-down pass maps subtrees that are
    isomorphic except for the values of those labels, when each is the only unmatched such
    subtree on both sides: a renamed variable then does not hide the statements around it
    from the bottom-up phase.

    ``anchors`` (called after the top-down phase) names pairs of nodes known to correspond
    whatever their contents, e.g. loops with the same name; each unmapped pair is mapped with
    its children of a label found once on both sides, before the bottom-up phase.
    """
    index(src)
    index(dst)
    mapping = Mapping()
    _top_down(src, dst, mapping, min_height)
    if renamable:
        _top_down_renamed(src, dst, mapping, min_height, renamable)
    for a, b in anchors() if anchors is not None else ():
        if not mapping.has_src(a) and not mapping.has_dst(b) and a.label == b.label:
            mapping.add(a, b)
            _map_unique_children(a, b, mapping)
    _bottom_up(src, dst, mapping, min_dice, max_size)
    return mapping


def _map_unique_children(t1: Tree, t2: Tree, mapping: Mapping) -> None:
    """Map the unmapped children of ``t1`` and ``t2`` whose label is unique among them."""
    labels1: dict[str, list[Tree]] = defaultdict(list)
    labels2: dict[str, list[Tree]] = defaultdict(list)
    for c in t1.children:
        if not mapping.has_src(c):
            labels1[c.label].append(c)
    for c in t2.children:
        if not mapping.has_dst(c):
            labels2[c.label].append(c)
    for label, ones in labels1.items():
        twos = labels2.get(label, [])
        if len(ones) == 1 and len(twos) == 1:
            mapping.add(ones[0], twos[0])


def _shape_digests(root: Tree, renamable: frozenset[str]) -> dict[int, int]:
    """Per node, a digest of its subtree that ignores the values of ``renamable`` labels."""
    digests: dict[int, int] = {}
    for t in root.postorder():
        value = None if t.label in renamable else t.value
        digests[id(t)] = hash((t.label, value, tuple(digests[id(c)] for c in t.children)))
    return digests


def _top_down_renamed(src: Tree, dst: Tree, mapping: Mapping, min_height: int,
                      renamable: frozenset[str]) -> None:
    d1, d2 = _shape_digests(src, renamable), _shape_digests(dst, renamable)
    groups: dict[int, tuple[list[Tree], list[Tree]]] = defaultdict(lambda: ([], []))
    for t in src.preorder():
        if t.height >= min_height and not mapping.has_src(t):
            groups[d1[id(t)]][0].append(t)
    for t in dst.preorder():
        if t.height >= min_height and not mapping.has_dst(t):
            groups[d2[id(t)]][1].append(t)
    pairs: list[tuple[int, int, Tree, Tree]] = []
    for srcs, dsts in groups.values():
        if not dsts:
            continue
        if len(srcs) == 1 and len(dsts) == 1:
            pairs.append((-srcs[0].height, -1, srcs[0], dsts[0]))
            continue
        # Several subtrees of one shape: pair those that agree on identifier values;
        # one left on each side after that is paired too.
        if len(srcs) * len(dsts) > _MAX_CANDIDATES ** 2:
            continue  # too repetitive to pair by names cheaply; bottom-up may still match
        scored = sorted(((_agreement(t1, t2), t1, t2) for t1 in srcs for t2 in dsts),
                        key=lambda x: -x[0])
        used: set[int] = set()
        for score, t1, t2 in scored:
            if score > 0 and id(t1) not in used and id(t2) not in used:
                pairs.append((-t1.height, -score, t1, t2))
                used.update((id(t1), id(t2)))
        left1 = [t for t in srcs if id(t) not in used]
        left2 = [t for t in dsts if id(t) not in used]
        if len(left1) == 1 and len(left2) == 1:
            pairs.append((-left1[0].height, 0, left1[0], left2[0]))
    for _, _, t1, t2 in sorted(pairs, key=lambda p: (p[0], p[1])):
        if mapping.has_src(t1) or mapping.has_dst(t2):
            continue
        for a, b in zip(t1.preorder(), t2.preorder()):
            if not mapping.has_src(a) and not mapping.has_dst(b):
                mapping.add(a, b)


def _agreement(t1: Tree, t2: Tree) -> int:
    """How many valued nodes two same-shape subtrees share values on."""
    return sum(1 for a, b in zip(t1.preorder(), t2.preorder())
               if a.value is not None and a.value == b.value)


def _top_down(src: Tree, dst: Tree, mapping: Mapping, min_height: int) -> None:
    queue1, queue2 = _HeightQueue(src), _HeightQueue(dst)
    ambiguous: list[tuple[Tree, Tree]] = []
    while min(queue1.peek(), queue2.peek()) >= min_height:
        h1, h2 = queue1.peek(), queue2.peek()
        if h1 != h2:
            (queue1 if h1 > h2 else queue2).open_all(max(h1, h2))
            continue
        group1, group2 = queue1.pop(h1), queue2.pop(h2)
        by_digest1, by_digest2 = defaultdict(list), defaultdict(list)
        for t in group1:
            by_digest1[t.digest].append(t)
        for t in group2:
            by_digest2[t.digest].append(t)
        matched1: set[int] = set()
        matched2: set[int] = set()
        for digest, srcs in by_digest1.items():
            for t1 in srcs:
                cands = [t2 for t2 in by_digest2.get(digest, ()) if t1.isomorphic(t2)]
                if not cands:
                    continue
                same_side = len(srcs) > 1 and any(
                    t is not t1 and t.isomorphic(cands[0]) for t in srcs)
                if len(cands) == 1 and not same_side:
                    mapping.add_isomorphic(t1, cands[0])
                else:
                    ambiguous.extend((t1, t2) for t2 in cands[:_MAX_CANDIDATES])
                matched1.add(id(t1))
                matched2.update(id(t2) for t2 in cands)
        for t in group1:
            if id(t) not in matched1:
                queue1.open(t)
        for t in group2:
            if id(t) not in matched2:
                queue2.open(t)
    ambiguous.sort(key=lambda pair: (
        -(dice(pair[0].parent, pair[1].parent, mapping) if pair[0].parent and pair[1].parent
          else 0.0), _position_gap(*pair)))
    for t1, t2 in ambiguous:
        if not mapping.has_src(t1) and not mapping.has_dst(t2):
            mapping.add_isomorphic(t1, t2)


def _position_gap(t1: Tree, t2: Tree) -> int:
    """Tie-breaker for equally similar candidates: prefer the same sibling position."""
    i1 = t1.parent.children.index(t1) if t1.parent else 0
    i2 = t2.parent.children.index(t2) if t2.parent else 0
    return abs(i1 - i2)


class _HeightQueue:
    """Nodes waiting in the top-down phase, grouped by height."""

    def __init__(self, root: Tree) -> None:
        self.by_height: dict[int, list[Tree]] = defaultdict(list)
        self.by_height[root.height].append(root)

    def peek(self) -> int:
        return max((h for h, nodes in self.by_height.items() if nodes), default=0)

    def pop(self, height: int) -> list[Tree]:
        return self.by_height.pop(height, [])

    def open(self, node: Tree) -> None:
        for child in node.children:
            self.by_height[child.height].append(child)

    def open_all(self, height: int) -> None:
        for node in self.pop(height):
            self.open(node)


def _bottom_up(src: Tree, dst: Tree, mapping: Mapping, min_dice: float,
               max_size: int) -> None:
    for t1 in src.postorder():
        if t1 is src:
            if not mapping.has_src(src) and not mapping.has_dst(dst) and src.label == dst.label:
                mapping.add(src, dst)
            if mapping.dst(src) is dst:
                _recover(src, dst, mapping, max_size)
            break
        if mapping.has_src(t1) or not t1.children:
            continue
        best, best_dice = None, -1.0
        for cand in _candidates(t1, mapping):
            d = dice(t1, cand, mapping)
            if d > best_dice:
                best, best_dice = cand, d
        if best is not None and best_dice >= min_dice:
            mapping.add(t1, best)
            _recover(t1, best, mapping, max_size)


def _candidates(t1: Tree, mapping: Mapping) -> list[Tree]:
    seen: dict[int, Tree] = {}
    for d in t1.descendants():
        image = mapping.dst(d)
        if image is None:
            continue
        for a in image.ancestors():
            if id(a) in seen:
                break
            if a.label == t1.label and not mapping.has_dst(a):
                seen[id(a)] = a
    return list(seen.values())


def _recover(t1: Tree, t2: Tree, mapping: Mapping, max_size: int) -> None:
    if max(t1.size, t2.size) >= max_size:
        return
    steps: list[Callable[[Tree, Tree], bool]] = [
        lambda a, b: a.isomorphic(b),
        lambda a, b: a.label == b.label and a.value == b.value,
    ]
    for same in steps:
        kids1 = [c for c in t1.children if not mapping.has_src(c)]
        kids2 = [c for c in t2.children if not mapping.has_dst(c)]
        for a, b in _lcs(kids1, kids2, same):
            if mapping.has_src(a) or mapping.has_dst(b):
                continue
            if same is steps[0]:
                mapping.add_isomorphic(a, b)
            else:
                mapping.add(a, b)
                _recover(a, b, mapping, max_size)
    before = {id(c) for c in t1.children if mapping.has_src(c)}
    _map_unique_children(t1, t2, mapping)
    for a in t1.children:
        if id(a) not in before and (image := mapping.dst(a)) is not None:
            _recover(a, image, mapping, max_size)


def _lcs(xs: list[Tree], ys: list[Tree],
         same: Callable[[Tree, Tree], bool]) -> list[tuple[Tree, Tree]]:
    """Longest common subsequence of two child lists under ``same``."""
    n, m = len(xs), len(ys)
    table = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n - 1, -1, -1):
        for j in range(m - 1, -1, -1):
            table[i][j] = table[i + 1][j + 1] + 1 if same(xs[i], ys[j]) else \
                max(table[i + 1][j], table[i][j + 1])
    out, i, j = [], 0, 0
    while i < n and j < m:
        if same(xs[i], ys[j]):
            out.append((xs[i], ys[j]))
            i += 1
            j += 1
        elif table[i + 1][j] >= table[i][j + 1]:
            i += 1
        else:
            j += 1
    return out
