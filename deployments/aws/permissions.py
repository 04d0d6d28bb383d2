"""The IAM the stack needs: the deployer's policy and the boundary of the roles it makes.

What CloudFormation calls for each resource type is read from CloudFormation's own registry
schemas (their `handlers.*.permissions`, as cfn-lint ships them), less NOT_USED: actions only a
property the template does not set needs, each named with that property (a test checks the
template still leaves it unset). RESOURCE_ACTIONS adds what the handlers leave out.

    python -m deployments.aws.permissions            > deployments/aws/deployer-policy.json
    python -m deployments.aws.permissions boundary   > deployments/aws/boundary-policy.json

A test checks that both files are current and that every resource type of the template is covered.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from typing import Any

HANDLER_OPERATIONS = ("create", "read", "update", "delete")  # what stack operations call
BOUNDARY_NAME = "numerai-prefect-boundary"  # stack.yaml's PermissionsBoundaryName default
TAG_KEY, TAG_VALUE = "project", "numerai-prefect"  # stack.py tags every stack with it

# Handler permissions this template never needs: action -> (resource types, the property that
# would need it). A test checks that no resource of those types sets the property.
NOT_USED: dict[str, tuple[tuple[str, ...], str]] = {
    "kms:CreateGrant": (("AWS::ECR::Repository", "AWS::Lambda::Function"), "KMS keys"),
    "kms:RetireGrant": (("AWS::ECR::Repository",), "EncryptionConfiguration"),
    "kms:DescribeKey": (
        ("AWS::ECR::Repository", "AWS::ECS::Cluster", "AWS::Lambda::Function"),
        "KMS keys",
    ),
    "kms:Decrypt": (("AWS::Lambda::Function",), "KmsKeyArn"),
    "kms:Encrypt": (("AWS::Lambda::Function",), "KmsKeyArn"),
    "kms:GenerateDataKey": (("AWS::Lambda::Function",), "KmsKeyArn"),
    "s3:GetObject": (("AWS::Lambda::Function",), "Code.S3Bucket"),
    "s3:GetObjectVersion": (("AWS::Lambda::Function",), "Code.S3ObjectVersion"),
    "elasticfilesystem:DescribeMountTargets": (("AWS::Lambda::Function",), "FileSystemConfigs"),
    "s3files:ListMountTargets": (("AWS::Lambda::Function",), "FileSystemConfigs"),
    "lambda:GetLayerVersion": (("AWS::Lambda::Function",), "Layers"),
    "lambda:GetCodeSigningConfig": (("AWS::Lambda::Function",), "CodeSigningConfigArn"),
    "lambda:PassCapacityProvider": (("AWS::Lambda::Function",), "CapacityProviderConfig"),
    "logs:PutResourcePolicy": (("AWS::Logs::LogGroup",), "ResourcePolicyDocument"),
    "logs:DeleteResourcePolicy": (("AWS::Logs::LogGroup",), "ResourcePolicyDocument"),
    "logs:CreateLogDelivery": (("AWS::Logs::LogGroup",), "DataProtectionPolicy"),
    "firehose:TagDeliveryStream": (("AWS::Logs::LogGroup",), "DataProtectionPolicy"),
    "s3:REST.PUT.OBJECT": (("AWS::Logs::LogGroup",), "DataProtectionPolicy"),
    # Account-wide ECS defaults: the cluster sets its own ClusterSettings instead.
    "ecs:PutAccountSetting": (("AWS::ECS::Cluster",), "AccountSettings"),
    "ecs:PutAccountSettingDefault": (("AWS::ECS::Cluster",), "AccountSettings"),
    # Lifting a role's boundary is the one thing the deployer must never do.
    "iam:DeleteRolePermissionsBoundary": (("AWS::IAM::Role",), "PermissionsBoundary removal"),
}


def handler_permissions(resource_type: str, region: str = "us-east-1") -> set[str]:
    """What CloudFormation's handlers call to create, read, update and delete a resource type."""
    from cfnlint.schema import PROVIDER_SCHEMA_MANAGER

    handlers = PROVIDER_SCHEMA_MANAGER.get_resource_schema(region, resource_type).schema.get(
        "handlers", {}
    )
    return {
        action
        for operation in HANDLER_OPERATIONS
        for action in handlers.get(operation, {}).get("permissions", [])
    }


# What CloudFormation calls on the deployer's behalf to create, update, tag and delete each type.
RESOURCE_ACTIONS: dict[str, tuple[str, ...]] = {
    "AWS::ECR::Repository": (
        "ecr:CreateRepository",
        "ecr:DeleteRepository",
        "ecr:DescribeRepositories",
        "ecr:PutLifecyclePolicy",
        "ecr:GetLifecyclePolicy",
        "ecr:DeleteLifecyclePolicy",
        "ecr:PutImageScanningConfiguration",
        "ecr:PutImageTagMutability",
        "ecr:ListImages",
        "ecr:BatchDeleteImage",
        "ecr:TagResource",
        "ecr:UntagResource",
        "ecr:ListTagsForResource",
    ),
    "AWS::ECS::Cluster": (
        "ecs:CreateCluster",
        "ecs:DeleteCluster",
        "ecs:DescribeClusters",
        "ecs:UpdateCluster",
        "ecs:UpdateClusterSettings",
        "ecs:PutClusterCapacityProviders",
        "ecs:TagResource",
        "ecs:UntagResource",
        "ecs:ListTagsForResource",
        "iam:CreateServiceLinkedRole",
    ),
    "AWS::ECS::TaskDefinition": (
        "ecs:RegisterTaskDefinition",
        "ecs:DeregisterTaskDefinition",
        "ecs:DescribeTaskDefinition",
        "ecs:TagResource",
        "iam:PassRole",
    ),
    "AWS::ECS::Service": (
        "ecs:CreateService",
        "ecs:UpdateService",
        "ecs:DeleteService",
        "ecs:DescribeServices",
        "ecs:TagResource",
    ),
    "AWS::EC2::SecurityGroup": (
        "ec2:CreateSecurityGroup",
        "ec2:DeleteSecurityGroup",
        "ec2:DescribeSecurityGroups",
        "ec2:AuthorizeSecurityGroupEgress",
        "ec2:RevokeSecurityGroupEgress",
        "ec2:CreateTags",
    ),
    "AWS::Logs::LogGroup": (
        "logs:CreateLogGroup",
        "logs:DeleteLogGroup",
        "logs:DescribeLogGroups",
        "logs:PutRetentionPolicy",
        "logs:DeleteRetentionPolicy",
        "logs:TagResource",
        "logs:UntagResource",
        "logs:ListTagsForResource",
    ),
    "AWS::IAM::Role": (
        "iam:CreateRole",
        "iam:DeleteRole",
        "iam:GetRole",
        "iam:UpdateAssumeRolePolicy",
        "iam:PutRolePolicy",
        "iam:GetRolePolicy",
        "iam:DeleteRolePolicy",
        "iam:ListRolePolicies",
        "iam:ListAttachedRolePolicies",
        "iam:TagRole",
        "iam:UntagRole",
    ),
    "AWS::SecretsManager::Secret": (
        "secretsmanager:CreateSecret",
        "secretsmanager:DeleteSecret",
        "secretsmanager:DescribeSecret",
        "secretsmanager:UpdateSecret",
        "secretsmanager:TagResource",
        "secretsmanager:UntagResource",
    ),
    "AWS::SQS::Queue": (
        "sqs:CreateQueue",
        "sqs:DeleteQueue",
        "sqs:GetQueueUrl",
        "sqs:GetQueueAttributes",
        "sqs:SetQueueAttributes",
        "sqs:TagQueue",
        "sqs:UntagQueue",
        "sqs:ListQueueTags",
    ),
    "AWS::SQS::QueuePolicy": ("sqs:SetQueueAttributes", "sqs:GetQueueAttributes"),
    "AWS::Events::Rule": (
        "events:PutRule",
        "events:DeleteRule",
        "events:DescribeRule",
        "events:PutTargets",
        "events:RemoveTargets",
        "events:ListTargetsByRule",
        "events:TagResource",
        "events:UntagResource",
    ),
    "AWS::Lambda::Function": (
        "lambda:CreateFunction",
        "lambda:DeleteFunction",
        "lambda:GetFunction",
        "lambda:GetFunctionConfiguration",
        "lambda:UpdateFunctionCode",
        "lambda:UpdateFunctionConfiguration",
        "lambda:TagResource",
        "lambda:UntagResource",
        "lambda:ListTags",
        "iam:PassRole",
    ),
    "AWS::Lambda::Url": (
        "lambda:CreateFunctionUrlConfig",
        "lambda:GetFunctionUrlConfig",
        "lambda:UpdateFunctionUrlConfig",
        "lambda:DeleteFunctionUrlConfig",
    ),
    "AWS::Lambda::Permission": (
        "lambda:AddPermission",
        "lambda:RemovePermission",
        "lambda:GetPolicy",
    ),
}

# Beyond the resources: driving the stack, finding the default VPC, storing the keys in the
# stack's secrets (and a Prefect Cloud key in the secret setup --aws keeps beside the stack),
# and pushing the image (prefect-ecs.yaml's push step), which the receiver's Lambda also pulls.
OPERATOR_ACTIONS: tuple[str, ...] = (
    "cloudformation:CreateStack",
    "cloudformation:UpdateStack",
    "cloudformation:DeleteStack",
    "cloudformation:DescribeStacks",
    "cloudformation:DescribeStackEvents",
    "cloudformation:DescribeStackResources",
    "cloudformation:GetTemplate",
    "cloudformation:ValidateTemplate",
    "cloudformation:GetTemplateSummary",
    "ec2:DescribeVpcs",
    "ec2:DescribeSubnets",
    "secretsmanager:PutSecretValue",
    "secretsmanager:GetSecretValue",
    "secretsmanager:DescribeSecret",
    "secretsmanager:CreateSecret",
    "secretsmanager:DeleteSecret",
    "secretsmanager:TagResource",
    "ecr:GetAuthorizationToken",
    "ecr:BatchCheckLayerAvailability",
    "ecr:InitiateLayerUpload",
    "ecr:UploadLayerPart",
    "ecr:CompleteLayerUpload",
    "ecr:PutImage",
    "ecr:BatchGetImage",
    "ecr:GetDownloadUrlForLayer",
)

# Actions IAM does not scope to a resource ARN (the service authorization reference says "*").
UNSCOPED_ACTIONS = frozenset(
    {
        "cloudformation:ValidateTemplate",
        "cloudformation:GetTemplateSummary",
        "ecr:GetAuthorizationToken",
        "ecs:RegisterTaskDefinition",
        "ecs:DeregisterTaskDefinition",
        "ecs:DescribeTaskDefinition",
        "logs:DescribeLogGroups",
        "logs:DescribeResourcePolicies",
        "ec2:DescribeVpcs",
        "ec2:DescribeSubnets",
        "ec2:DescribeSecurityGroups",
        "ec2:DescribeInstances",
        "ec2:DescribeNetworkInterfaces",
        "secretsmanager:GetRandomPassword",
    }
)

# Security groups have no name in their ARN: the stack's are told apart by the tag it gives
# them at creation. EC2 documents aws:RequestTag for CreateSecurityGroup and ec2:CreateAction for
# tagging during a create; afterwards aws:ResourceTag names the stack's groups.
SECURITY_GROUP_CREATE = "ec2:CreateSecurityGroup"
SECURITY_GROUP_TAG_ON_CREATE = "ec2:CreateTags"

# IAM actions that write a role's policies or boundary: only with the boundary on the role.
BOUNDED_IAM_ACTIONS = frozenset(
    {
        "iam:CreateRole",
        "iam:PutRolePolicy",
        "iam:DeleteRolePolicy",
        "iam:AttachRolePolicy",
        "iam:DetachRolePolicy",
        "iam:PutRolePermissionsBoundary",
    }
)

# Tagging actions: the deployer sets only the stack's tag (and CloudFormation's own aws: tags),
# by aws:TagKeys, which these services document for tagging; ECS's tag-on-create key
# (ecs:CreateAction) applies to its TagResource as well.
TAGGING_ACTIONS = frozenset(
    {
        "ecr:TagResource",
        "ecs:TagResource",
        "logs:TagResource",
        "sqs:TagQueue",
        "secretsmanager:TagResource",
        "events:TagResource",
        "lambda:TagResource",
        "iam:TagRole",
    }
)
ALLOWED_TAG_KEYS = [TAG_KEY, "aws:cloudformation:*"]


def resource_arns(service: str, prefix: str) -> list[str]:
    """ARNs of what a stack named PREFIX... creates in one service (see stack.yaml's names)."""
    p = prefix
    return {
        "cloudformation": [f"arn:aws:cloudformation:*:*:stack/{p}*/*"],
        "ecr": [f"arn:aws:ecr:*:*:repository/{p}*"],
        "ecs": [
            f"arn:aws:ecs:*:*:cluster/{p}*",
            f"arn:aws:ecs:*:*:service/{p}*/*",
            f"arn:aws:ecs:*:*:service-deployment/{p}*/*",
            f"arn:aws:ecs:*:*:task-definition/{p}*:*",
        ],
        "logs": [
            f"arn:aws:logs:*:*:log-group:/numerai-prefect/{p}*",
            f"arn:aws:logs:*:*:log-group:/aws/lambda/{p}*",
        ],
        "iam": [f"arn:aws:iam::*:role/{p}*"],
        "secretsmanager": [f"arn:aws:secretsmanager:*:*:secret:{p}*/*"],
        "sqs": [f"arn:aws:sqs:*:*:{p}*"],
        "events": [f"arn:aws:events:*:*:rule/{p}*"],
        "lambda": [f"arn:aws:lambda:*:*:function:{p}*", f"arn:aws:lambda:*:*:function:{p}*:*"],
        "ec2": ["arn:aws:ec2:*:*:security-group/*"],
    }[service]


def resource_type_actions(resource_type: str) -> set[str]:
    """What deploying one resource type takes: its handlers' permissions, ours, less NOT_USED."""
    if resource_type not in RESOURCE_ACTIONS:
        raise KeyError(f"no IAM actions known for resource type {resource_type}")
    actions = handler_permissions(resource_type) | set(RESOURCE_ACTIONS[resource_type])
    return {a for a in actions if a not in NOT_USED}


def required_actions(resource_types: Iterable[str]) -> set[str]:
    """Every action deploying these resource types and operating the stack takes."""
    types = set(resource_types)
    unknown = types - set(RESOURCE_ACTIONS)
    if unknown:
        raise KeyError(f"no IAM actions known for resource types {sorted(unknown)}")
    actions = set(OPERATOR_ACTIONS)
    for resource_type in types:
        actions |= resource_type_actions(resource_type)
    return actions


def boundary_arn(name: str = BOUNDARY_NAME) -> str:
    """The boundary policy's ARN in any account (IAM condition values take wildcards)."""
    return f"arn:aws:iam::*:policy/{name}"


def _statement(sid: str, actions: Iterable[str], resource: Any, **condition: Any) -> dict[str, Any]:
    statement: dict[str, Any] = {
        "Sid": sid,
        "Effect": "Allow",
        "Action": sorted(actions),
        "Resource": resource,
    }
    if condition:
        statement["Condition"] = condition
    return statement


def _ec2_statements(actions: set[str]) -> list[dict[str, Any]]:
    """Security groups: created with the stack's tag, then changed only while they carry it."""
    groups = resource_arns("ec2", "")
    statements = []
    if SECURITY_GROUP_CREATE in actions:
        statements.append(
            _statement("Ec2CreateInVpc", [SECURITY_GROUP_CREATE], "arn:aws:ec2:*:*:vpc/*")
        )
        statements.append(
            _statement(
                "Ec2CreateTaggedGroup",
                [SECURITY_GROUP_CREATE],
                groups,
                StringEquals={f"aws:RequestTag/{TAG_KEY}": TAG_VALUE},
            )
        )
    if SECURITY_GROUP_TAG_ON_CREATE in actions:
        statements.append(
            _statement(
                "Ec2TagOnCreate",
                [SECURITY_GROUP_TAG_ON_CREATE],
                groups,
                StringEquals={"ec2:CreateAction": SECURITY_GROUP_CREATE.split(":")[1]},
            )
        )
    changes = {
        a
        for a in actions
        if a.startswith("ec2:") and a not in UNSCOPED_ACTIONS and a != SECURITY_GROUP_CREATE
    }
    if changes:
        statements.append(
            _statement(
                "Ec2StackGroups",
                changes,
                groups,
                StringEquals={f"aws:ResourceTag/{TAG_KEY}": TAG_VALUE},
            )
        )
    return statements


def deployer_policy(
    resource_types: Iterable[str], prefix: str = "numerai-prefect"
) -> dict[str, Any]:
    """The least-privilege policy for deploying and removing stacks named PREFIX..."""
    actions = required_actions(resource_types)
    statements = [_statement("Unscoped", (a for a in actions if a in UNSCOPED_ACTIONS), "*")]
    special = {"iam:PassRole", "iam:CreateServiceLinkedRole"}
    for service in sorted({a.split(":")[0] for a in actions} - {"ec2"}):
        scoped = {
            a
            for a in actions
            if a.split(":")[0] == service and a not in UNSCOPED_ACTIONS and a not in special
        }
        bounded = scoped & BOUNDED_IAM_ACTIONS
        tagging = scoped & TAGGING_ACTIONS
        plain = scoped - bounded - tagging
        sid = service.capitalize()
        arns = resource_arns(service, prefix)
        if plain:
            statements.append(_statement(sid, plain, arns))
        if tagging:
            statements.append(
                _statement(
                    f"{sid}Tags",
                    tagging,
                    arns,
                    **{"ForAllValues:StringLike": {"aws:TagKeys": ALLOWED_TAG_KEYS}},
                )
            )
        if bounded:
            statements.append(
                _statement(
                    f"{sid}RolesWithBoundary",
                    bounded,
                    arns,
                    StringLike={"iam:PermissionsBoundary": boundary_arn()},
                )
            )
    statements += _ec2_statements(actions)
    if "iam:PassRole" in actions:
        statements.append(
            _statement(
                "PassStackRoles",
                ["iam:PassRole"],
                resource_arns("iam", prefix),
                StringEquals={
                    "iam:PassedToService": ["ecs-tasks.amazonaws.com", "lambda.amazonaws.com"]
                },
            )
        )
    if "iam:CreateServiceLinkedRole" in actions:
        statements.append(
            _statement(
                "EcsServiceLinkedRole",
                ["iam:CreateServiceLinkedRole"],
                "arn:aws:iam::*:role/aws-service-role/ecs.amazonaws.com/*",
                StringEquals={"iam:AWSServiceName": "ecs.amazonaws.com"},
            )
        )
    return {"Version": "2012-10-17", "Statement": statements}


def boundary_policy(prefix: str = "numerai-prefect") -> dict[str, Any]:
    """The most any role of the stack may do, whatever policy it is given (its roles' union)."""
    p = prefix
    return {
        "Version": "2012-10-17",
        "Statement": [
            _statement(
                "Unscoped",
                [
                    "ecr:GetAuthorizationToken",
                    "ecs:RegisterTaskDefinition",
                    "ecs:DescribeTaskDefinition",
                    "ecs:DeregisterTaskDefinition",
                    "ec2:DescribeVpcs",
                    "ec2:DescribeSubnets",
                ],
                "*",
            ),
            _statement(
                "PullImages",
                [
                    "ecr:BatchCheckLayerAvailability",
                    "ecr:BatchGetImage",
                    "ecr:GetDownloadUrlForLayer",
                ],
                resource_arns("ecr", p),
            ),
            _statement(
                "Logs",
                [
                    "logs:CreateLogGroup",
                    "logs:CreateLogStream",
                    "logs:PutLogEvents",
                    "logs:GetLogEvents",
                ],
                [f"{arn}:*" for arn in resource_arns("logs", p)] + resource_arns("logs", p),
            ),
            _statement(
                "ReadStackSecrets",
                ["secretsmanager:GetSecretValue"],
                resource_arns("secretsmanager", p),
            ),
            _statement(
                "RunRoundTasks",
                ["ecs:RunTask", "ecs:TagResource", "ecs:DescribeTasks", "ecs:StopTask"],
                [
                    "arn:aws:ecs:*:*:task-definition/*",
                    f"arn:aws:ecs:*:*:task/{p}*/*",
                ],
            ),
            _statement(
                "PassTaskRoles",
                ["iam:PassRole"],
                resource_arns("iam", p),
                StringEquals={"iam:PassedToService": "ecs-tasks.amazonaws.com"},
            ),
            _statement(
                "EventQueue",
                [
                    "sqs:GetQueueUrl",
                    "sqs:ReceiveMessage",
                    "sqs:DeleteMessage",
                    "sqs:ChangeMessageVisibility",
                ],
                resource_arns("sqs", p),
            ),
        ],
    }


def main(argv: list[str] | None = None) -> int:
    """Print the deployer policy for stack.yaml (or, with `boundary`, the roles' boundary)."""
    from deployments.aws.stack import TEMPLATE, resource_types

    args = sys.argv[1:] if argv is None else argv
    if args == ["boundary"]:
        print(json.dumps(boundary_policy(), indent=2))
    else:
        print(json.dumps(deployer_policy(resource_types(TEMPLATE.read_text())), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
