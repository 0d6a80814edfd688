"""GumTree matching on generic trees, including the worked example of the GumTree paper."""

from __future__ import annotations

from flordb.hindsight.gumtree import Tree, dice, match


def T(label, value=None, *children):  # noqa: N802 - reads like the paper's figures
    return Tree(label, value, list(children))


def paper_source():
    """``class Test { private String foo(int i) { if (i == 0) return "Foo!"; } }``"""
    ret = T("ReturnStatement", None, T("StringLiteral", '"Foo!"'))
    cond = T("InfixExpression", "==", T("SimpleName", "i"), T("NumberLiteral", "0"))
    if_ = T("IfStatement", None, cond, ret)
    method = T("MethodDeclaration", None, T("Modifier", "private"),
               T("SimpleType", "String", T("SimpleName", "String")), T("SimpleName", "foo"),
               T("SingleVariableDeclaration", None, T("PrimitiveType", "int"),
                 T("SimpleName", "i")),
               T("Block", None, if_))
    root = T("CompilationUnit", None, T("TypeDeclaration", None, T("Modifier", "public"),
                                        T("SimpleName", "Test"), method))
    return root, if_, cond, ret


def paper_destination():
    """The same with ``if (i == 0) return "Bar"; else if (i == -1) return "Foo!";``."""
    ret_foo = T("ReturnStatement", None, T("StringLiteral", '"Foo!"'))
    inner = T("IfStatement", None,
              T("InfixExpression", "==", T("SimpleName", "i"),
                T("PrefixExpression", "-", T("NumberLiteral", "1"))), ret_foo)
    ret_bar = T("ReturnStatement", None, T("StringLiteral", '"Bar"'))
    cond = T("InfixExpression", "==", T("SimpleName", "i"), T("NumberLiteral", "0"))
    if_ = T("IfStatement", None, cond, ret_bar, inner)
    method = T("MethodDeclaration", None, T("Modifier", "private"),
               T("SimpleType", "String", T("SimpleName", "String")), T("SimpleName", "foo"),
               T("SingleVariableDeclaration", None, T("PrimitiveType", "int"),
                 T("SimpleName", "i")),
               T("Block", None, if_))
    root = T("CompilationUnit", None, T("TypeDeclaration", None, T("Modifier", "public"),
                                        T("SimpleName", "Test"), method))
    return root, if_, cond, ret_foo, ret_bar, inner


def test_paper_worked_example():
    src, src_if, src_cond, src_ret = paper_source()
    dst, dst_if, dst_cond, dst_ret_foo, dst_ret_bar, dst_inner = paper_destination()
    m = match(src, dst)
    assert m.dst(src_ret) is dst_ret_foo  # return "Foo!" moved into the else-if
    assert m.dst(src_cond) is dst_cond  # i == 0 stays
    assert m.dst(src_if) is dst_if  # the if is matched bottom-up
    assert m.src(dst_inner) is None and m.src(dst_ret_bar) is None  # inserted
    assert m.dst(src) is dst
    # everything of the method signature is matched
    src_method = src.children[0].children[2]
    dst_method = dst.children[0].children[2]
    assert m.dst(src_method) is dst_method
    assert all(m.dst(a) is b for a, b in zip(src_method.children[:4], dst_method.children[:4]))


def test_identical_trees_map_completely():
    src, *_ = paper_source()
    dst, *_ = paper_source()
    m = match(src, dst)
    assert len(m) == src.size
    assert all(m.dst(a) is b for a, b in zip(src.preorder(), dst.preorder()))


def test_thresholds_are_tunable():
    src, src_if, cond, _ = paper_source()
    dst, dst_if, dst_cond, *_ = paper_destination()
    assert match(src, dst, max_size=0).dst(src_if) is dst_if
    assert match(src, dst, min_dice=1.01, max_size=0).dst(src_if) is None  # too dissimilar
    strict = match(src, dst, min_height=4, max_size=0)  # i == 0 is too short to match alone
    assert strict.dst(cond) is not dst_cond


def test_dice():
    a = T("A", None, T("x", "1"), T("y", "2"))
    b = T("A", None, T("x", "1"), T("z", "3"))
    m = match(a, b)
    assert dice(a, b, m) == 2 * 1 / (2 + 2)


def test_ambiguous_candidates_prefer_the_same_parent():
    leaf = lambda: T("Call", "f", T("Arg", "1"))  # noqa: E731
    src = T("Root", None, T("Block", "a", leaf(), T("Other", "o", T("k", "1"))),
            T("Block", "b", leaf()))
    dst = T("Root", None, T("Block", "a", leaf(), T("Other", "o", T("k", "1"))),
            T("Block", "b", leaf()))
    m = match(src, dst)
    for a, b in zip(src.preorder(), dst.preorder()):
        assert m.dst(a) is b


def test_renamable_labels_match_renamed_subtrees():
    src = T("Root", None, T("Assign", None, T("Name", "loss"), T("Call", None, T("Name", "f"))),
            T("Expr", None, T("Call", None, T("Name", "g"), T("Name", "loss"))))
    dst = T("Root", None, T("Assign", None, T("Name", "l"), T("Call", None, T("Name", "f"))))
    m = match(src, dst, renamable=frozenset({"Name"}))
    assert m.dst(src.children[0]) is dst.children[0]
    assert m.dst(src.children[0].children[0]).value == "l"
