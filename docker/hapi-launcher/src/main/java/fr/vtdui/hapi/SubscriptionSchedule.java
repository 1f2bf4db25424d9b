package fr.vtdui.hapi;

import ca.uhn.fhir.jpa.subscription.async.AsyncResourceModifiedProcessingSchedulerSvc;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.beans.factory.config.BeanPostProcessor;

/**
 * Shortens the interval at which HAPI hands saved resources to subscription matching.
 *
 * <p>Since HAPI 6.10 a write does not reach the subscription matcher directly: the subscription interceptor
 * stores a "resource modified" message in the database and a scheduled job ({@link
 * AsyncResourceModifiedProcessingSchedulerSvc}, every 5 s by default) submits the stored messages to the matching
 * and delivery channels. A REST-hook delivery thus waits 0 to 5 s before it even starts. The job reads its interval
 * from a public field when the scheduler starts (after the context is refreshed), so setting the field on the bean
 * HAPI's {@code SubscriptionSubmitterConfig} defines is enough: no bean of HAPI is redefined.
 */
public class SubscriptionSchedule implements BeanPostProcessor {

	private static final Logger LOG = LoggerFactory.getLogger(SubscriptionSchedule.class);

	private final long intervalMillis;

	/** @param intervalMillis the submission interval; 0 or less keeps HAPI's default */
	public SubscriptionSchedule(long intervalMillis) {
		this.intervalMillis = intervalMillis;
	}

	@Override
	public Object postProcessBeforeInitialization(Object bean, String beanName) {
		if (bean instanceof AsyncResourceModifiedProcessingSchedulerSvc schedule && intervalMillis > 0) {
			schedule.mySubmissionIntervalInMilliSeconds = intervalMillis;
			LOG.info("vtdui HAPI launcher: subscription submission every {} ms (HAPI's default {} ms)",
					intervalMillis, AsyncResourceModifiedProcessingSchedulerSvc.DEFAULT_SUBMISSION_INTERVAL_IN_MS);
		}
		return bean;
	}
}
