"""The annotator model: why reviewers disagree -- noise, pluralism or ambiguity.

Public API::

    from dissensus.models.annotator import AnnotatorConfig, AnnotatorModel
    model = AnnotatorModel(AnnotatorConfig(n_schools="auto")).fit(frame)   # frame: model_frame
    model.reviewer_estimates_, model.pair_estimates_, model.comparison_weights_,
    model.fit_summary_, model.save(path), AnnotatorModel.load(path, config)

Modules, each importing only modules listed before it: plain data -- :mod:`.errors`,
:mod:`.config`, :mod:`.judgments` (the coded input), :mod:`.lattice` (the pair states); the
input -- :mod:`.likelihood`, :mod:`.features`, :mod:`.data` (checking and coding the frame);
the grid EM -- :mod:`._kernels`, :mod:`.priors`, :mod:`.pooling`, :mod:`.deviation_prior`,
:mod:`.grid_em` (the fast default); then :mod:`.decomposition` (noise / pluralism / ambiguity
shares and verdicts), :mod:`.results` (``FitResult``), :mod:`.selection` (choosing K),
:mod:`.model` (the PyMC model and its math), :mod:`.warm_start`, :mod:`.sampling` (NUTS /
ADVI), :mod:`.inference` (method and K choice), :mod:`.predict`, :mod:`.persistence`,
:mod:`.estimator`. Beside them: :mod:`.oracle` (the ceilings) and :mod:`.synthetic` (a
miniature simulator for tests).
"""

from .config import AnnotatorConfig
from .errors import AnnotatorDataError
from .estimator import AnnotatorModel

__all__ = ["AnnotatorConfig", "AnnotatorDataError", "AnnotatorModel"]
