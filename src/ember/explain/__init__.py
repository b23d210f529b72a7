"""ember.explain: why a model predicts what it does.

Attributions to the input (which features, pixels or words pushed the target class's score):
:func:`saliency`, :func:`input_x_gradient`, :func:`smoothgrad`, :func:`integrated_gradients`,
:func:`occlusion`; to a layer: :func:`grad_cam`, :func:`grad_cam_plus_plus` (with
:func:`interpolate` to the input's size), :func:`layer_integrated_gradients`,
:func:`layer_gradient_x_activation` (token ids through an embedding); attention:
:func:`attention_maps`, :func:`capture_attention`, :func:`attention_rollout`; tabular models:
:func:`permutation_importance`. Pictures are in :mod:`ember.explain.plots`.

Matches: Captum's ``captum.attr`` (Saliency, InputXGradient, NoiseTunnel,
IntegratedGradients, Occlusion, LayerGradCam, LayerIntegratedGradients,
LayerGradientXActivation, LayerAttribution.interpolate) in argument names, defaults and
results; scikit-learn's ``permutation_importance``. Every method takes the model (an
``ember.nn.Module`` or a callable), a batch ``inputs`` with the examples along dim 0 and a
``target`` class (an int, one per example, or None for the predicted class), runs the model in
evaluation mode and restores its mode and ``requires_grad`` flags, and removes its hooks.

    >>> import ember
    >>> from ember import explain
    >>> model = ember.nn.Sequential(ember.nn.Linear(4, 8), ember.nn.ReLU(),
    ...                             ember.nn.Linear(8, 3))
    >>> explain.integrated_gradients(model, ember.randn(2, 4), target=1).shape
    (2, 4)
"""

from .attention import *  # noqa: F401,F403
from .gradients import *  # noqa: F401,F403
from .layers import *  # noqa: F401,F403
from .perturbation import *  # noqa: F401,F403
