"""Code written for the original Pylightnix runs unchanged against this package.

The two samples below are written the way the original's users wrote them: a
0.2.x Manager-era script (``stage(m)``, ``mkdrv(m, ...)``, ``promise``,
``store_*`` queries, ``mksymlink``) and a script for the later Registry API
(``r=None`` stages, ``Output`` callbacks, ``match_all`` without parentheses,
``linkrref(format=...)``, ``du()`` as a dict, ``autostage``/``autodrv``,
``realizeManyE``, ``repl_*``, ``fetchurl2``, ``spack``/``sunpack``,
``gc_candidates``). Each runs in a fresh interpreter with its own
``PYLIGHTNIX_ROOT``; DeprecationWarnings are shown (not errors), as a user
would see them, and the test checks they name the new spellings.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

SAMPLE_02 = r"""
import os
from os.path import join
from pylightnix import (Manager, Config, DRef, RRef, Build, Path, store_initialize,
  mkconfig, mkdrv, match_latest, match_only, build_wrapper, build_outpath, build_cattrs,
  build_path, instantiate, realize, realizeMany, instantiate_inplace, realize_inplace,
  rref2path,
  mknode, mkfile, mklens, promise, store_deref, store_context, store_config, store_buildtime,
  store_rrefs_, store_drefs, store_deepdeps, store_deps, store_gc, lsref, catref, du,
  mksymlink, isrref, isdref, undref, unrref, trimhash, mkcontext, context_add,
  context_deref, config_dict, config_name, match_n, latest, timestring, parsetime,
  assert_valid_rref, repl_realize, repl_continue1, repl_build, repl_continueBuild,
  redefine, realized, dirhash, tryread, readjson, writejson)

store_initialize()

def dataset(m:Manager)->DRef:
  return mknode(m, {'name':'dataset', 'rows':3}, {'data.csv':b'1\n2\n3\n'})

def train(m:Manager, lr:float=0.1)->DRef:
  data = dataset(m)
  def _config()->Config:
    name = 'train'
    src = [data, 'data.csv']
    model = [promise, 'model.txt']
    return mkconfig({'name':name, 'lr':lr, 'src':src, 'model':model})
  def _realize(b:Build)->None:
    c = build_cattrs(b)
    rows = open(build_path(b, c.src)).read().split()
    with open(join(build_outpath(b), 'model.txt'), 'w') as f:
      f.write(str(sum(map(int, rows)) * c.lr))
  return mkdrv(m, _config(), match_latest(), build_wrapper(_realize))

clo = instantiate(train)
rref = realize(clo)
rrefs = realizeMany(clo)
assert rrefs == [rref] and realize(instantiate(train)) == rref
assert isrref(rref) and not isdref(rref)
print('model', open(join(rref2path(rref), 'model.txt')).read())
rh, dh, name = unrref(rref)
assert name == 'train' and isdref(clo.dref) and undref(clo.dref) == (dh, name)
assert [d.dref for d in clo.derivations][-1] == clo.dref
assert trimhash('ab' * 32) == 'ab' * 16
data_dref = store_deps([clo.dref]).pop()
assert store_config(rref)['lr'] == 0.1
assert store_deref(rref, data_dref) in store_rrefs_(data_dref)
assert sorted(store_context(rref)) == [data_dref]
assert data_dref in store_deepdeps([clo.dref])
assert set(store_drefs()) == {data_dref, clo.dref}
assert parsetime(store_buildtime(rref)) is not None
assert lsref(rref) == ['model.txt']
assert catref(rref, ['model.txt']) == ['0.6000000000000001']
sizes = du()
assert sizes[clo.dref][1][rref] > 0
link = mksymlink(rref, os.getcwd(), 'model', withtime=False)
assert os.readlink(link).endswith(rref2path(rref)[-65:])
ctx = context_add(mkcontext(), clo.dref, [rref])
assert context_deref(ctx, clo.dref) == [rref]
m2 = realizeMany(instantiate(train, lr=0.5))
assert m2 != rrefs and store_config(m2[0])['lr'] == 0.5
dref = instantiate_inplace(mkfile, 'greeting', b'hello')
assert mklens(realize_inplace(dref)).syspath.endswith(rref2path(realize_inplace(dref))[-32:])
assert assert_valid_rref(rref) is None
best = realizeMany(instantiate(redefine(train, new_matcher=match_n(1, [latest()]))))
assert len(best) == 1
assert realizeMany(instantiate(realized(train))) == rrefs
keep_d, keep_r = store_gc([], [rref])
assert rref not in keep_r and data_dref not in keep_d
rh = repl_realize(instantiate(train, lr=0.7))
b = repl_build(rh)
with open(join(build_outpath(b), 'model.txt'), 'w') as f:
  f.write('by hand')
repl_continueBuild(b, rh)
assert open(join(rref2path(rh.context[rh.closure.dref][0]), 'model.txt')).read() == 'by hand'
writejson('x.json', {'a': [1]})
assert readjson('x.json') == {'a': [1]} and tryread('missing.txt') is None
assert len(dirhash(rref2path(rref))) == 64
print('OK 0.2.x')
"""

SAMPLE_03 = r"""
import os, shutil, tempfile
from os.path import join
from typing import Optional
from pylightnix import (Registry, DRef, RRef, Build, Path, StorageSettings, mkSS, fsinit,
  mkconfig, mkdrv, selfref, match_only, match_all, match_some, build_wrapper, build_outpath,
  build_cattrs, build_path, mklens, instantiate, realize1, realizeMany, realize,
  current_registry, mkregistry, rref2path, Output, output_matcher, output_realizer,
  output_validate, linkrref, linkrrefs, linkdref, du, datahash, filehash, encode, mkdref,
  mkrref, rrefctx, context_deref, cfgdict, cfghash, cfgsp, cfgcattrs, drefcfg, kahntsort,
  dagroots, BuildError, PromiseException, PylightnixException, fstmpdir, autostage,
  autodrv, realizeU, mkdrvE, realizeManyE, either_isLeft, either_status, repl_realize,
  repl_result, repl_continue1, repl_cancel, fetchlocal, rrefbstart, rrefbdelta, pyobjhash,
  tlregistry, isrefpath, isselfpath, gc_candidates, diskspace_h, alldrefs, mknode)
from pylightnix import partial, Tuple, Any, Config, path2dref, dref2path, linkdref, isrref
from pylightnix.stages.fetch2 import fetchurl2, unpack
from pylightnix.arch import spack, sunpack
from pylightnix.either import Either

S = mkSS(os.path.join(os.getcwd(), 'store'))
fsinit(S, remove_existing=True, use_as_default=True)

def stage_a(r:Optional[Registry]=None)->DRef:
  def _make(b:Build)->None:
    with open(join(build_outpath(b), 'artifact'), 'w') as f:
      f.write('42')
  return mkdrv(mkconfig({'name':'a', 'artifact':[selfref, 'artifact']}),
               match_only(), build_wrapper(_make), r)

def stage_b(r:Optional[Registry]=None)->DRef:
  a = stage_a(r)
  def _make(b:Build)->None:
    c = build_cattrs(b)
    with open(join(build_outpath(b), 'out'), 'w') as f:
      f.write(open(build_path(b, c.src)).read() * 2)
  return mkdrv(mkconfig({'name':'b', 'src':[a, 'artifact'], 'out':[selfref, 'out']}),
               match_all, build_wrapper(_make), r)

rref = realize1(instantiate(stage_b))
assert mklens(rref).out.contents == '4242'
assert mklens(rref).src.syspath.endswith('artifact')
result, clo, ctx = realize(instantiate(stage_b))
assert ctx[result] == [rref]
assert mklens(result).syspath == os.path.dirname(rref2path(rref))
assert cfgdict(clo.derivations[-1].config)['name'] == 'b'
assert len(cfghash(clo.derivations[-1].config)) == 32
assert cfgsp(clo.derivations[-1].config) == [('out', [selfref, 'out'])]
assert cfgcattrs(clo.derivations[-1].config).name == 'b'
assert clo.derivations[-1].config.val['name'] == 'b'
a = clo.derivations[0].dref
assert context_deref(rrefctx(rref), a) == realizeMany(instantiate(stage_a))

with current_registry(mkregistry(S)) as r:
  d = stage_b(r)
  assert tlregistry() is r
  assert realize1(instantiate(d, r=r)) == rref

def _matcher(S:StorageSettings, o:Output)->Optional[Output]:
  return o if len(o.val) >= 2 else None
def _realizer(S:StorageSettings, dref:DRef, ctx, rarg)->Output:
  outs = []
  for i in range(2):
    o = tempfile.mkdtemp(dir=fstmpdir(S))
    with open(join(o, 'n.txt'), 'w') as f:
      f.write(str(i))
    outs.append(o)
  return Output(outs)
def stage_multi(r=None):
  return mkdrv(mkconfig({'name':'multi', 'n':[selfref, 'n.txt']}),
               output_matcher(_matcher), output_realizer(_realizer), r)
multi = realizeMany(instantiate(stage_multi))
assert sorted(mklens(x).n.contents for x in multi) == ['0', '1']
links = linkrrefs(multi, '.', format='_rref_%(T)s_%(N)s')
assert all(os.path.basename(l).startswith('_rref_') for l in links)
assert linkdref(clo.derivations[0].dref, '.', format='_dref_%(N)s').endswith('_dref_a')
assert linkrref(rref, None, format='_b_%(N)s').endswith('_b_b')
for dref, (total, rrefs) in du().items():
  assert total >= sum(rrefs.values())
assert diskspace_h(1536) == '1.5 KiB'

def stage_fail(r=None):
  def _make(b:Build)->None:
    raise ValueError('boom')
  return mkdrv(mkconfig({'name':'fail'}), match_only(), build_wrapper(_make), r)
try:
  realize1(instantiate(stage_fail))
  raise SystemExit('no BuildError')
except BuildError as e:
  assert isinstance(e.exception, ValueError) and str(e.exception) == 'boom'

def stage_broken(r=None):
  def _make(b:Build)->None:
    pass
  return mkdrv(mkconfig({'name':'broken', 'f':[selfref, 'f']}), match_only(),
               build_wrapper(_make), r)
try:
  realize1(instantiate(stage_broken))
  raise SystemExit('no PromiseException')
except PylightnixException as e:
  assert isinstance(e, PromiseException) or isinstance(e.__cause__, PromiseException), e

@autostage(scale=3)
def scaled(scale, base=2, out=[selfref, 'v.txt'], build=None):
  with open(out, 'w') as f:
    f.write(str(scale * base))
ra = realizeU(instantiate(scaled))
assert open(ra.out).read() == '6'

def stage_e(r=None):
  def _make(b:Build)->None:
    raise RuntimeError('left')
  return mkdrvE(mkconfig({'name':'e'}), match_only(), build_wrapper(_make), r)
e = realizeManyE(instantiate(stage_e))
assert isinstance(e, Either) and either_isLeft(e) and 'left' in either_status(e)

rh = repl_realize(instantiate(stage_b, r=mkregistry(S)), force_interrupt=True)
assert repl_result(rh) is None
assert repl_continue1(rh=rh) == rref

src = os.path.join(os.getcwd(), 'data.txt')
with open(src, 'w') as f:
  f.write('payload')
local = realize1(instantiate(fetchlocal, path=src, sha256=filehash(src), mode='as-is'))
assert mklens(local).out_path.contents == 'payload'
f2 = realize1(instantiate(fetchurl2, src))
assert mklens(f2).out.contents == 'payload'
shutil.make_archive('arch', 'gztar', root_dir=os.getcwd(), base_dir='data.txt')
un = realize1(instantiate(unpack, path=os.path.abspath('arch.tar.gz')))
assert open(join(rref2path(un), 'data.txt')).read() == 'payload'

assert kahntsort([1, 2, 3], {3: [2], 2: [1]}) == [1, 2, 3]
assert dagroots([1, 2, 3], {3: [2], 2: [1]}) == {3}
assert datahash([encode('a'), encode('b')]) == datahash([('hint', b'ab')])
assert pyobjhash([stage_a]) == pyobjhash([stage_a])
assert isrefpath([a, 'artifact']) and isselfpath([selfref, 'x'])
assert rrefbdelta(rref) >= 0 and rrefbstart(rref) > 0

spack([rref], 'closure.tar.gz')
S2 = fsinit(mkSS(os.path.join(os.getcwd(), 'store2')))
assert sunpack('closure.tar.gz', S2) == [rref]
cand_d, cand_r = gc_candidates([os.getcwd()])
assert rref not in cand_r
def pair(r:Optional[Registry]=None)->Tuple[DRef, DRef]:
  return stage_a(r), stage_b(r)
(da, db), clo2 = instantiate(partial(pair))
_, _, ctx2 = realize(clo2)
assert ctx2[db] == [rref] and path2dref(dref2path(db)) == db
raw = realize1(instantiate(mkdrv, Config({'name': 'raw'}), match_only(),
                           build_wrapper(lambda b: None)))
assert isrref(raw)
print('OK 0.3.x')
"""


SAMPLE_HELPERS = r"""
import os, tempfile
from os.path import join, isfile
from pylightnix import (Registry, Build, Path, fsinit, DRef, RRef, Context, Optional, List,
  mkbuildargs, build_markstart, build_markstop, mkconfig, mkdrv, rref2path, Config,
  RealizeArg, StorageSettings, maybereadstr, tryreadstr_def, selfref, Output, MatcherO,
  RealizerO, output_realizer, output_matcher, mkSS, dirrm, instantiate, realizeMany,
  PromiseException, cfgsp, drefcfg_, rref2dref, allrrefs, deepcopy)

def test_config(c:dict)->Config:
  c2 = deepcopy(c)
  c2['artifact'] = [selfref, 'artifact']
  return mkconfig(c2)

def test_match(n:int)->MatcherO:
  def _match(S, o:Output[RRef])->Optional[Output[RRef]]:
    scored = sorted((maybereadstr(join(rref2path(r, S), 'artifact'), '0', int), r)
                    for r in o.val)
    return Output([r for _, r in scored[-n:]]) if scored else None
  return _match

def test_realize(nouts:int, value, drop:bool)->RealizerO:
  def _realize(S, dref:DRef, ctx:Context, ra:RealizeArg)->Output[Path]:
    b = Build(mkbuildargs(S, dref, ctx, None, 'AUTO', {}, {}))
    for i, o in enumerate(build_markstart(b, nouts)):
      if not (drop and i == nouts - 1):
        with open(join(o, 'artifact'), 'w') as f:
          f.write(str(value(i)))
    build_markstop(b)
    return Output(b.outpaths)
  return _realize

def stage(config:dict, r:Optional[Registry]=None, nouts:int=2, nmatch:int=1,
          drop:bool=False)->DRef:
  return mkdrv(test_config(config), output_matcher(test_match(nmatch)),
               output_realizer(test_realize(nouts, lambda i: 10 + i, drop)), r)

root = join(tempfile.mkdtemp(), 'pylightnix', 'helpers')
dirrm(root)
S = mkSS(root)
fsinit(S, remove_existing=True, check_not_exist=True)
best = realizeMany(instantiate(stage, {'a': 1}, S=S))
assert [maybereadstr(join(rref2path(r, S), 'artifact'), '0', int) for r in best] == [11]
assert tryreadstr_def(join(rref2path(best[0], S), 'nothing'), 'def') == 'def'
try:
  realizeMany(instantiate(stage, {'a': 2}, drop=True, S=S))
  raise SystemExit('no PromiseException')
except PromiseException as e:
  assert [not isfile(join(p, *sp[1:])) for p, sp in e.failed] == [True]
for rref in allrrefs(S):
  for key, sp in cfgsp(drefcfg_(rref2dref(rref), S)):
    assert isfile(join(rref2path(rref, S), *sp[1:]))
print('OK helpers')
"""


def _run(tmp_path: Any, code: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYLIGHTNIX_")}
    env["PYLIGHTNIX_ROOT"] = str(tmp_path / "root")
    env["PYTHONWARNINGS"] = "always::DeprecationWarning"
    script = tmp_path / "sample.py"
    script.write_text(code)
    return subprocess.run(
        [sys.executable, str(script)],
        cwd=str(tmp_path),
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_manager_era_script_runs_unchanged(tmp_path: Any) -> None:
    """A 0.2.x script (Manager stages, promise, store_* queries, REPL) runs and prints OK."""
    p = _run(tmp_path, SAMPLE_02)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == ["model 0.6000000000000001", "OK 0.2.x"]
    assert (
        "pylightnix.promise is a name of the original Pylightnix; in this package: "
        "pylightnix.selfref" in p.stderr
    )


def test_registry_api_script_runs_unchanged(tmp_path: Any) -> None:
    """A script for the Registry API (Output callbacks, Either, autostage, archives) runs."""
    p = _run(tmp_path, SAMPLE_03)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == ["OK 0.3.x"]
    assert (
        "pylightnix.arch.spack is a name of the original Pylightnix; in this package: "
        "pylightnix.export_closure" in p.stderr
    )


def test_original_style_test_helpers_run_unchanged(tmp_path: Any) -> None:
    """Helpers in the style of the original's test suite (Build(mkbuildargs(...)), Output)."""
    p = _run(tmp_path, SAMPLE_HELPERS)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == ["OK helpers"]
