"""Train and evaluate a model with recbole_gen: python run_recbole_gen.py --model=SASRec --dataset=ml-100k

Any other --key=value is a RecBole/recbole_gen setting (e.g. --epochs=5 --image_dir=path/to/images).
--resume=PATH continues an interrupted run from its checkpoint (saved/MODEL-DATE.pth).
--nproc=N runs on N processes of this machine (RecBole's DDP; --world_size, --offset, --ip, --port for
several machines; or start this script with torchrun): see docs/distributed.md.
"""

import argparse
import sys

from recbole_gen.quick_start import run

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", "-m", type=str, default="SASRec", help="model name (RecBole or recbole_gen)")
    parser.add_argument("--dataset", "-d", type=str, default="ml-100k", help="dataset name")
    parser.add_argument("--config_files", type=str, default=None, help="space-separated config files")
    parser.add_argument("--resume", type=str, default=None, help="checkpoint of an interrupted run to continue")
    parser.add_argument("--nproc", type=int, default=1, help="processes on this machine (one per GPU of gpu_id, or CPU)")
    parser.add_argument("--world_size", type=int, default=-1, help="processes on all machines (default: nproc)")
    parser.add_argument("--offset", type=int, default=0, help="global rank of this machine's first process")
    parser.add_argument("--ip", type=str, default="localhost", help="address of the machine with rank 0")
    parser.add_argument("--port", type=int, default=5678, help="free port on the machine with rank 0")
    args, _ = parser.parse_known_args()
    # RecBole's Config reads the remaining --key=value arguments from sys.argv; --resume is not a setting.
    if args.resume:
        sys.argv = [arg for i, arg in enumerate(sys.argv)
                    if not arg.startswith("--resume") and not (arg == args.resume and sys.argv[i - 1] == "--resume")]
    config_file_list = args.config_files.strip().split(" ") if args.config_files else None
    run(model=args.model, dataset=args.dataset, config_file_list=config_file_list, resume=args.resume, nproc=args.nproc,
        world_size=args.world_size, ip=args.ip, port=args.port, offset=args.offset)
