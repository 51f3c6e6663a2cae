"""The annotator model: why reviewers disagree -- noise, pluralism or ambiguity.

Public API::

    from dissensus.models.annotator import AnnotatorConfig, AnnotatorModel
    model = AnnotatorModel(AnnotatorConfig(n_schools="auto")).fit(frame)   # frame: model_frame
    model.reviewer_estimates_, model.pair_estimates_, model.comparison_weights_,
    model.fit_summary_, model.save(path), AnnotatorModel.load(path, config)

Modules: :mod:`.model` (the PyMC model and its math), :mod:`.grid_em` (the fast default),
:mod:`.sampling` (NUTS / ADVI), :mod:`.inference` (method and K choice), :mod:`.decomposition`
(noise / pluralism / ambiguity shares and verdicts), :mod:`.oracle` (the ceilings),
:mod:`.persistence`, :mod:`.synthetic` (a miniature simulator for tests).
"""

from .config import AnnotatorConfig
from .errors import AnnotatorDataError
from .estimator import AnnotatorModel

__all__ = ["AnnotatorConfig", "AnnotatorDataError", "AnnotatorModel"]
