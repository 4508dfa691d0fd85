import { LABEL } from '../sim/render-slice.ts';

/** Volume and patch metrics, accumulated slice by slice. */
export interface SegmentationScores {
  /** Foreground (dendrite) IoU and Dice over all voxels. */
  iou: number;
  dice: number;
  /** The paper's patch means: per patch, IoU (Dice) averaged over both classes; then averaged over patches. */
  mIoU: number;
  mDSC: number;
  patches: number;
  /** Fraction of pit / bubble voxels predicted as dendrite (confounders). */
  pitAsDendrite: number;
  bubbleAsDendrite: number;
  voxels: { truePositive: number; falsePositive: number; falseNegative: number };
}

/** Accumulate predictions against ground-truth labels (0 bg, 1 dendrite, 2 pit, 3 bubble). */
export class SegmentationMetrics {
  private tp = 0;
  private fp = 0;
  private fn = 0;
  private pit = 0;
  private pitHit = 0;
  private bubble = 0;
  private bubbleHit = 0;
  private patchIoU = 0;
  private patchDice = 0;
  private patchCount = 0;

  constructor(private readonly patch = 128) {}

  /**
   * Add one slice: the predicted mask (0/1) and the truth labels, both row-major width×height.
   * Voxels labelled `unlabelled` (a user's sparse labels: 255) are left out of every count.
   */
  addSlice(mask: Uint8Array, labels: Uint8Array, width: number, height: number, unlabelled?: number): void {
    for (let i = 0; i < mask.length; i++) {
      const l = labels[i];
      if (l === unlabelled) continue;
      const p = mask[i] === 1;
      if (l === LABEL.dendrite) {
        if (p) this.tp++;
        else this.fn++;
      } else if (p) this.fp++;
      if (l === LABEL.pit) {
        this.pit++;
        if (p) this.pitHit++;
      } else if (l === LABEL.bubble) {
        this.bubble++;
        if (p) this.bubbleHit++;
      }
    }
    // Paper-style patches: the slice cut into non-overlapping patch×patch squares (whole ones only).
    for (let y0 = 0; y0 + this.patch <= height; y0 += this.patch) {
      for (let x0 = 0; x0 + this.patch <= width; x0 += this.patch) {
        let tp = 0;
        let fp = 0;
        let fn = 0;
        let labelled = 0;
        for (let y = y0; y < y0 + this.patch; y++) {
          for (let x = x0; x < x0 + this.patch; x++) {
            const i = y * width + x;
            if (labels[i] === unlabelled) continue;
            labelled++;
            const p = mask[i] === 1;
            const t = labels[i] === LABEL.dendrite;
            if (p && t) tp++;
            else if (p) fp++;
            else if (t) fn++;
          }
        }
        // A patch with no labelled voxel says nothing.
        if (labelled === 0) continue;
        const tn = labelled - tp - fp - fn;
        // A class absent from both truth and prediction is perfectly segmented (IoU 1).
        const iouFg = tp + fp + fn === 0 ? 1 : tp / (tp + fp + fn);
        const iouBg = tn + fp + fn === 0 ? 1 : tn / (tn + fp + fn);
        const diceFg = tp + fp + fn === 0 ? 1 : (2 * tp) / (2 * tp + fp + fn);
        const diceBg = tn + fp + fn === 0 ? 1 : (2 * tn) / (2 * tn + fp + fn);
        this.patchIoU += (iouFg + iouBg) / 2;
        this.patchDice += (diceFg + diceBg) / 2;
        this.patchCount++;
      }
    }
  }

  /** The scores so far. */
  scores(): SegmentationScores {
    const { tp, fp, fn } = this;
    return {
      iou: tp + fp + fn === 0 ? 1 : tp / (tp + fp + fn),
      dice: tp + fp + fn === 0 ? 1 : (2 * tp) / (2 * tp + fp + fn),
      mIoU: this.patchCount ? this.patchIoU / this.patchCount : Number.NaN,
      mDSC: this.patchCount ? this.patchDice / this.patchCount : Number.NaN,
      patches: this.patchCount,
      pitAsDendrite: this.pit ? this.pitHit / this.pit : 0,
      bubbleAsDendrite: this.bubble ? this.bubbleHit / this.bubble : 0,
      voxels: { truePositive: tp, falsePositive: fp, falseNegative: fn },
    };
  }
}
