"""Every SageMaker job and model a state machine asks for runs in the stage's private network
when it has one, and nowhere near one when it has none.

The state machines are read as CloudFormation deploys them (the ASL asset with its
substitutions) and walked from ``StartAt``: a Choice on a value a Pass state put there from a
substitution (``infra.network.asl_network``) is decided, every other Choice may go either way.
Every SageMaker create request reachable that way is held to the stage's network.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Template

from tests.infra.conftest import make_app, stack

SAGEMAKER_CREATE = re.compile(
    r"^arn:aws:states:::(?:aws-sdk:)?sagemaker:(?P<action>create[A-Za-z]+?)(?:\.sync(?::2)?)?$"
)
SPLIT = re.compile(r"^States\.StringSplit\((?P<path>\$[\w.]+), ','\)$")
#: what a state machine may create in SageMaker, and where each request's VpcConfig goes
VPC_KEY = {
    "createTrainingJob": ("VpcConfig",),
    "createProcessingJob": ("NetworkConfig", "VpcConfig"),
    "createModel": ("VpcConfig",),
}


@dataclass
class Request:
    machine: str
    state: str
    action: str
    parameters: dict[str, Any]
    known: dict[str, str]
    tokens: dict[str, Any]


@dataclass
class Synth:
    template: Template
    outdir: Path
    #: the SageMaker requests of its state machines, once walked
    requests: list[Request] | None = None


def _synth(tmp: Path, **context: Any) -> Synth:
    app = make_app("dev", outdir=tmp, **context)
    app.synth()
    return Synth(Template.from_stack(stack(app, "sluice-dev-app")), tmp)


@pytest.fixture(scope="module")
def off(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return _synth(tmp_path_factory.mktemp("off"))


@pytest.fixture(scope="module")
def on(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return _synth(tmp_path_factory.mktemp("vpc"), vpc="create")


def _definition(synth: Synth, machine: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The definition CloudFormation creates, tokens (``Ref``, ``Fn::Join``, ...) standing as
    ``<token:Name>`` strings, and those strings' template values."""
    text = (synth.outdir / f"asset.{machine['DefinitionS3Location']['Key']}").read_text()
    tokens: dict[str, Any] = {}
    for name, value in machine.get("DefinitionSubstitutions", {}).items():
        rendered = value if isinstance(value, str) else f"<token:{name}>"
        tokens[rendered] = value
        text = text.replace("${" + name + "}", rendered)
    return json.loads(text), tokens


def _decide(rule: dict[str, Any], known: dict[str, str]) -> bool | None:
    """A Choice rule's outcome when it compares a known value with a string; else None."""
    variable = rule.get("Variable")
    if variable in known and "StringEquals" in rule:
        return bool(known[variable] == rule["StringEquals"])
    return None


def _after(state: dict[str, Any], known: dict[str, str]) -> dict[str, str]:
    """What is still known after ``state`` wrote its result (or replaced its output)."""
    if state.get("OutputPath", "$") != "$":
        return {}
    if state["Type"] == "Wait" or (
        state["Type"] == "Pass" and "Parameters" not in state and "Result" not in state
    ):
        return known  # its input is its output
    path = state.get("ResultPath", "$")
    if path is None:
        return known
    kept = {k: v for k, v in known.items() if not (k + ".").startswith(path + ".")}
    if state["Type"] == "Pass" and "Parameters" in state and path != "$":
        for key, value in state["Parameters"].items():
            if isinstance(value, str) and not key.endswith(".$"):
                kept[f"{path}.{key}"] = value
    return {} if path == "$" else kept


def _walk(
    machine: str, states: dict[str, Any], start: str, tokens: dict[str, Any]
) -> Iterator[Request]:
    todo: list[tuple[str, dict[str, str]]] = [(start, {})]
    seen: set[tuple[str, str]] = set()
    while todo:
        name, known = todo.pop()
        key = (name, json.dumps(known, sort_keys=True))
        if key in seen:
            continue
        seen.add(key)
        state = states[name]
        nexts: list[str] = []
        kind = state["Type"]
        if kind == "Choice":
            for rule in state["Choices"]:
                outcome = _decide(rule, known)
                if outcome is None:
                    nexts.append(rule["Next"])
                elif outcome:
                    nexts.append(rule["Next"])
                    break
            else:
                nexts.append(state["Default"])
        else:
            if kind == "Task":
                match = SAGEMAKER_CREATE.match(state["Resource"])
                if match:
                    yield Request(
                        machine, name, match["action"], state["Parameters"], known, tokens
                    )
                nexts += [c["Next"] for c in state.get("Catch", [])]
            inners = [state.get("ItemProcessor") or state.get("Iterator")]
            for inner in [*inners, *state.get("Branches", [])]:
                if inner:
                    yield from _walk(machine, inner["States"], inner["StartAt"], tokens)
            if "Next" in state:
                nexts.append(state["Next"])
            known = _after(state, known)
        todo += [(n, known) for n in nexts]


def _requests(synth: Synth) -> list[Request]:
    if synth.requests is not None:
        return synth.requests
    found: list[Request] = []
    for machine in synth.template.find_resources("AWS::StepFunctions::StateMachine").values():
        props = machine["Properties"]
        definition, tokens = _definition(synth, props)
        found += _walk(
            props["StateMachineName"], definition["States"], definition["StartAt"], tokens
        )
    synth.requests = found
    return found


def _vpc(request: Request) -> dict[str, Any] | None:
    found: Any = request.parameters
    for key in VPC_KEY.get(request.action, ("VpcConfig",)):
        found = (found or {}).get(key)
    return found


def _resolved(request: Request, expression: str) -> Any:
    """A ``States.StringSplit(<path>, ',')`` of a known value, as the template holds it."""
    match = SPLIT.match(expression)
    assert match, f"{request.machine}/{request.state}: {expression} splits no comma-joined value"
    value = request.known[match["path"]]
    return request.tokens.get(value, value)


def test_without_a_network_no_request_names_a_vpc(off: Synth) -> None:
    requests = _requests(off)
    actions = {(r.machine, r.action) for r in requests}
    assert {
        ("sluice-dev-training", "createTrainingJob"),
        ("sluice-dev-training", "createProcessingJob"),
        ("sluice-dev-deploy", "createModel"),
        ("sluice-dev-batch-scoring", "createTransformJob"),
    } <= actions
    for request in requests:
        assert _vpc(request) is None, (request.machine, request.state)


#: the state machines that create SageMaker jobs or models, and what each creates
CREATORS = {
    "sluice-dev-training": {"createTrainingJob", "createProcessingJob"},
    "sluice-dev-deploy": {"createModel"},
}


def test_every_state_machine_that_creates_jobs_or_models_is_held_to_the_network(
    on: Synth,
) -> None:
    creates: dict[str, set[str]] = {}
    for request in _requests(on):
        if request.action in VPC_KEY:
            creates.setdefault(request.machine, set()).add(request.action)
    assert creates == CREATORS


@pytest.mark.parametrize(
    "machine",
    ["sluice-dev-training", "sluice-dev-deploy"],
)
def test_with_a_network_every_job_and_model_runs_in_its_subnets(on: Synth, machine: str) -> None:
    template = on.template
    subnets = sorted(template.find_resources("AWS::EC2::Subnet"))
    groups = template.find_resources("AWS::EC2::SecurityGroup")
    requests = [r for r in _requests(on) if r.action in VPC_KEY and r.machine == machine]
    assert {r.action for r in requests} == CREATORS[machine]
    for request in requests:
        where = (request.machine, request.state)
        vpc = _vpc(request)
        assert vpc is not None, where
        joined = _resolved(request, vpc["Subnets.$"])
        assert joined["Fn::Join"][0] == ","
        assert sorted(s["Ref"] for s in joined["Fn::Join"][1]) == subnets, where
        group = _resolved(request, vpc["SecurityGroupIds.$"])
        (gid, attribute) = group["Fn::GetAtt"]
        assert attribute == "GroupId"
        assert "interface endpoints" not in groups[gid]["Properties"]["GroupDescription"], where


def test_jobs_in_the_network_are_isolated_and_encrypt_traffic_between_instances(on: Synth) -> None:
    for request in _requests(on):
        params = request.parameters
        if request.action == "createTrainingJob":
            network = params
        elif request.action == "createProcessingJob":
            network = params["NetworkConfig"]
        else:
            continue
        assert network["EnableNetworkIsolation"] is True, request.state
        assert network["EnableInterContainerTrafficEncryption"] is True, request.state


def _statements(template: Template, fragment: str) -> list[dict[str, Any]]:
    return [
        statement
        for pid, policy in template.find_resources("AWS::IAM::Policy").items()
        if fragment in pid
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def _group_of(synth: Synth, machine: str, action: str) -> str:
    """The logical id of the security group a machine's request of ``action`` names."""
    request = next(r for r in _requests(synth) if r.machine == machine and r.action == action)
    vpc = _vpc(request)
    assert vpc is not None
    return str(_resolved(request, vpc["SecurityGroupIds.$"])["Fn::GetAtt"][0])


def test_the_jobs_role_may_put_interfaces_only_in_the_subnets_with_the_jobs_group(
    on: Synth,
) -> None:
    group = _group_of(on, "sluice-dev-training", "createTrainingJob")
    assert group == _group_of(on, "sluice-dev-training", "createProcessingJob")
    policies = {
        pid: p["Properties"]
        for pid, p in on.template.find_resources("AWS::IAM::Policy").items()
        if "TrainingPipelineJobs" in pid and "VpcAccess" in pid
    }
    (policy,) = policies.values()
    assert "TrainingPipelineSageMakerRole" in json.dumps(policy["Roles"])
    statements = policy["PolicyDocument"]["Statement"]
    (create,) = [s for s in statements if s["Action"] == "ec2:CreateNetworkInterface"]
    resources = json.dumps(create["Resource"])
    assert group in resources and resources.count(":subnet/") == 2
    managed = [s for s in statements if "ec2:CreateNetworkInterfacePermission" in s["Action"]]
    assert managed and all("network-interface/*" in json.dumps(s["Resource"]) for s in managed)


def test_the_state_machine_may_start_jobs_only_there_isolated_and_encrypted(
    on: Synth, off: Synth
) -> None:
    group = _group_of(on, "sluice-dev-training", "createTrainingJob")
    for synth, vpc in ((on, True), (off, False)):
        statements = [
            s
            for s in _statements(synth.template, "TrainingPipelineTrainingMachineAccess")
            if "sagemaker:CreateTrainingJob" in s["Action"]
        ]
        (create,) = statements
        assert sorted(create["Action"]) == ["sagemaker:CreateProcessingJob",
                                            "sagemaker:CreateTrainingJob"]  # fmt: skip
        condition = create["Condition"]
        assert condition["Bool"] == {
            "sagemaker:NetworkIsolation": "true",
            "sagemaker:InterContainerTrafficEncryption": "true",
        }
        if vpc:
            allowed = condition["ForAllValues:StringEquals"]
            assert allowed["sagemaker:VpcSecurityGroupIds"] == [{"Fn::GetAtt": [group, "GroupId"]}]
            assert len(allowed["sagemaker:VpcSubnets"]) == 2
            assert condition["Null"] == {"sagemaker:VpcSubnets": "false"}
        else:
            assert set(condition) == {"Bool"}


def test_batch_scoring_uses_only_a_model_in_the_private_subnets(on: Synth, off: Synth) -> None:
    # a transform job has no network of its own: it runs where its model does (the serving
    # model, created by the deploy steps above), and the prepare step checks where that is
    for synth, vpc in ((on, True), (off, False)):
        (transform,) = [r for r in _requests(synth) if r.action == "createTransformJob"]
        assert "ModelName.$" in transform.parameters and "VpcConfig" not in transform.parameters
        (score,) = [
            f["Properties"]["Environment"]["Variables"]
            for f in synth.template.find_resources("AWS::Lambda::Function").values()
            if f["Properties"].get("Handler") == "lambdas.score.handler.handler"
        ]
        if vpc:
            joined = score["PRIVATE_SUBNET_IDS"]["Fn::Join"]
            assert sorted(s["Ref"] for s in joined[1]) == sorted(
                synth.template.find_resources("AWS::EC2::Subnet")
            )
        else:
            assert "PRIVATE_SUBNET_IDS" not in score
